"""The pseudonymisation line: after `pseudonymise_table` no raw identifier is left in a frame.

Identifiers become keyed tokens under their stored names (`person_id` -> `person_token`),
postcodes become their district, and dropped fields are gone. Dates stay exact, because the
validation rules (not in the future, on or after, the child's age) need the day; they are
coarsened to the month by `coarsen_table` once validation has run.

For every field whose treatment can turn a present raw value into a null (a token field, because
an NHS number failing its check is stored as a null token; a postcode, because an invalid one has
no district), the pseudonymised frame carries a Boolean helper column `_present_<field>` saying
whether the raw value was given. The `required` and cross-field rules read presence from it, so an
invalid NHS number is a warning and never also a "required but blank" error. Helper columns start
with `_` and `coarsen_table` drops them: they are never stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import polars as pl

from pseudonymise.coarsen import month_start_expr, postcode_district_expr
from pseudonymise.identifiers import nhs_number_valid_expr, upn_valid_expr
from pseudonymise.tokens import Tokeniser
from schemas.contract import Dataset, Field, Kind, Treatment
from schemas.outcome import ROW_NUMBER, issue_frame
from schemas.parse import DTYPES
from schemas.rules import NHS_NUMBER_CHECK, POSTCODE_FORMAT, UPN_CHECK, Severity

HELPER_PREFIX = "_"

# Identifiers with a national check: tokenised without LA scope, and only when the check passes.
_CHECKED_IDENTIFIERS: dict[Kind, tuple[str, Callable[[pl.Expr], pl.Expr]]] = {
    Kind.NHS_NUMBER: (NHS_NUMBER_CHECK, nhs_number_valid_expr),
    Kind.UPN: (UPN_CHECK, upn_valid_expr),
}


def validated_column(field: Field) -> str:
    """The field's column in the pseudonymised frame: token and postcode columns are renamed
    at once; coarsened dates keep their name until `coarsen_table`."""
    if field.treatment is Treatment.TOKEN or field.kind is Kind.POSTCODE:
        return field.stored_name
    return field.name


def has_presence_helper(field: Field) -> bool:
    return field.treatment is Treatment.TOKEN or field.kind is Kind.POSTCODE


def presence_column(field: Field) -> str:
    return f"{HELPER_PREFIX}present_{field.name}"


def presence_expr(field: Field) -> pl.Expr:
    """True where the LA gave a value for the field, whatever pseudonymisation made of it."""
    if has_presence_helper(field):
        return pl.col(presence_column(field))
    return pl.col(validated_column(field)).is_not_null()


def validated_dtype(field: Field) -> pl.DataType:
    return DTYPES[field.kind]


def pseudonymise_table(
    typed: pl.DataFrame,
    dataset: Dataset,
    tokeniser: Tokeniser,
    la_code: str,
    *,
    fields: tuple[Field, ...] | None = None,
    known_tokens: Mapping[str, pl.Series] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Tokenise identifiers, reduce postcodes to districts and drop every dropped field.

    Returns the pseudonymised frame (ROW_NUMBER, one column per stored field under
    `validated_column`, then the presence helpers) and the warning issues it raised.
    `fields` narrows it to some stored fields. `known_tokens` are token columns already made
    for these rows (by field name, in row order), used as they are; identifiers with a
    national check are always tokenised here, since their check raises warnings.
    """
    rows = typed.get_column(ROW_NUMBER)
    columns: list[pl.Series] = [rows]
    helpers: list[pl.Series] = []
    warnings: list[pl.DataFrame] = []
    known = known_tokens or {}
    for field in dataset.stored_fields if fields is None else fields:
        raw = _typed_column(typed, field)
        if has_presence_helper(field):
            helpers.append(raw.is_not_null().alias(presence_column(field)))
        if field.treatment is Treatment.TOKEN and _reusable(field, known):
            column, issues = known[field.name], None
        elif field.treatment is Treatment.TOKEN:
            column, issues = _tokenise(raw, rows, field, tokeniser, la_code)
        elif field.kind is Kind.POSTCODE:
            column, issues = _postcode_district(raw, rows, field)
        else:
            column, issues = raw, None
        columns.append(column.alias(validated_column(field)))
        if issues is not None:
            warnings.append(issues)
    frame = pl.DataFrame([*columns, *helpers])
    return frame, issue_frame(warnings)


def _reusable(field: Field, known: Mapping[str, pl.Series]) -> bool:
    return field.name in known and field.kind not in _CHECKED_IDENTIFIERS


def coarsen_table(frame: pl.DataFrame, dataset: Dataset) -> pl.DataFrame:
    """The stored form of a validated frame: ROW_NUMBER, then every stored field under its
    stored name in declaration order; dates of birth and death cut to the month, helpers gone."""
    return frame.select(
        pl.col(ROW_NUMBER),
        *(_stored_expr(field) for field in dataset.stored_fields),
    )


def _stored_expr(field: Field) -> pl.Expr:
    column = pl.col(validated_column(field))
    if field.treatment is Treatment.COARSEN and field.kind is Kind.DATE:
        return month_start_expr(column).alias(field.stored_name)
    return column.alias(field.stored_name)


def _typed_column(typed: pl.DataFrame, field: Field) -> pl.Series:
    """The parsed column, or all nulls when the file did not have it."""
    if field.name in typed.columns:
        return typed.get_column(field.name)
    return pl.Series(field.name, [None] * typed.height, dtype=validated_dtype(field))


def _tokenise(
    raw: pl.Series, rows: pl.Series, field: Field, tokeniser: Tokeniser, la_code: str
) -> tuple[pl.Series, pl.DataFrame | None]:
    assert field.token_kind is not None, f"token field {field.name} has no token kind"
    if field.kind not in _CHECKED_IDENTIFIERS:
        return tokeniser.tokenise(raw, field.token_kind, la_code), None
    rule, valid_expr = _CHECKED_IDENTIFIERS[field.kind]
    valid = _evaluate(raw, valid_expr)
    failing = raw.is_not_null() & ~valid
    checked = raw.zip_with(~failing, pl.Series([None], dtype=pl.String()))
    tokens = tokeniser.tokenise(checked, field.token_kind, None)
    return tokens, _warnings(rows, failing, field.name, rule)


def _postcode_district(
    raw: pl.Series, rows: pl.Series, field: Field
) -> tuple[pl.Series, pl.DataFrame]:
    district = _evaluate(raw, postcode_district_expr)
    failing = raw.is_not_null() & district.is_null()
    return district, _warnings(rows, failing, field.name, POSTCODE_FORMAT)


def _evaluate(raw: pl.Series, make_expr: Callable[[pl.Expr], pl.Expr]) -> pl.Series:
    """Apply one of `pseudonymise.identifiers`' expression builders to a series."""
    return pl.DataFrame({"raw": raw}).select(make_expr(pl.col("raw"))).to_series()


def _warnings(rows: pl.Series, failing: pl.Series, column: str, rule: str) -> pl.DataFrame:
    return pl.DataFrame({ROW_NUMBER: rows.filter(failing.fill_null(False))}).select(
        pl.col(ROW_NUMBER),
        pl.lit(column, dtype=pl.String()).alias("column"),
        pl.lit(rule, dtype=pl.String()).alias("rule"),
        pl.lit(Severity.WARNING.value, dtype=pl.String()).alias("severity"),
    )
