"""One pandera (polars backend) schema per dataset, built from the dataset's declaration.

The schema describes the pseudonymised frame of `schemas.treatment.pseudonymise_table`: token and
postcode columns under their stored names, dates still exact, presence helpers for the fields
pseudonymisation can null. Every check is a row-wise polars expression named
`<field>::<rule>` (the LA's canonical column name and a rule name of `schemas.rules` or of a
`RowRule`), so a failure maps back to a (row, column, rule) issue without looking at the value.

Decisions:

- Every check sits on a column (cross-field and duplicate-key checks too, on the rule's column):
  pandera then reports only that column as the failing cases. A dataframe-level check would make
  pandera turn every failing row into a dict of all its values, which is both slow and a copy of
  the data nobody needs.
- "Not in the future" is relative to a `today` that `validate_rows` writes into the helper column
  `_today`, so one schema per dataset serves every day and can be cached.
- A key is duplicated when the same tuple of key values, with at least one of them present,
  occurs on two rows or more; each such row fails on each of its present key columns. A blank key
  part counts as a value (a withdrawal of person P with no family, given twice, is a duplicate).
- Checks never fail on a null cell (the expressions treat null as passing, and pandera's
  `ignore_na` is left on); blanks are the business of the `required` and cross-field rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

import pandera.polars as pa
import polars as pl
from pandera.config import ValidationDepth, config_context
from pandera.errors import SchemaErrorReason, SchemaErrors

from schemas.contract import (
    TRIAL_START,
    ChildAgeInTrial,
    Dataset,
    Field,
    Kind,
    OneRequired,
    OnlyWhenBlank,
    OnOrAfter,
    RequiredUnless,
    RequiredWhen,
    RowRule,
)
from schemas.outcome import ROW_NUMBER, empty_issues, issue_frame
from schemas.rules import (
    CODE_LIST,
    DUPLICATE_KEY,
    NOT_IN_FUTURE,
    OUT_OF_RANGE,
    REQUIRED,
    Severity,
)
from schemas.treatment import (
    has_presence_helper,
    presence_column,
    presence_expr,
    validated_column,
    validated_dtype,
)

TODAY_COLUMN = "_today"
DUPLICATED_COLUMN = "_key_repeated"
CHECK_NAME_SEPARATOR = "::"
_CHECK_OUTPUT = "passed"

# The message of every error raised here: pandera's own messages quote the data.
SCHEMA_BUG_MESSAGE = (
    "the pseudonymised frame does not have the shape its schema expects "
    "(a missing column or a wrong dtype): this is a fault in the service, not in the file"
)


def check_name(column: str, rule: str) -> str:
    return f"{column}{CHECK_NAME_SEPARATOR}{rule}"


def split_check_name(name: str) -> tuple[str, str]:
    column, _, rule = name.partition(CHECK_NAME_SEPARATOR)
    return column, rule


_SCHEMAS: dict[tuple[int, bool], tuple[Dataset, pa.DataFrameSchema]] = {}


def schema_for(dataset: Dataset, *, duplicates_given: bool = False) -> pa.DataFrameSchema:
    """The dataset's schema, built once per `Dataset` object.

    With `duplicates_given` the duplicate-key checks read the helper column `DUPLICATED_COLUMN`
    (the row's key is repeated somewhere in the table) instead of looking for repeats in the
    frame: that is how a table checked a slice at a time finds repeats across slices.
    """
    # Keyed by identity: a Dataset holds dicts, so it cannot be hashed. The Dataset is kept in
    # the cache too, so its id cannot be reused by another object.
    cache_key = (id(dataset), duplicates_given)
    cached = _SCHEMAS.get(cache_key)
    if cached is None or cached[0] is not dataset:
        cached = (dataset, _build_schema(dataset, duplicates_given=duplicates_given))
        _SCHEMAS[cache_key] = cached
    return cached[1]


def validate_rows(
    frame: pl.DataFrame,
    dataset: Dataset,
    *,
    today: date,
    duplicated_rows: pl.Series | None = None,
) -> pl.DataFrame:
    """Every (row, column, rule) that breaks the dataset's rules, as ERROR issues.

    `duplicated_rows`, when given, are the ROW_NUMBERs whose key is repeated in the whole table
    (see `duplicated_key_rows`); the frame may then be any slice of the table. Without it,
    repeats are looked for in the frame itself.

    Raises RuntimeError when the frame does not fit the schema's shape. Its message is
    `SCHEMA_BUG_MESSAGE` followed by the schema's own column names and pandera's reason codes
    (or the type of an unexpected exception): never a value, never pandera's or polars' text.
    """
    schema = schema_for(dataset, duplicates_given=duplicated_rows is not None)
    checked = frame.with_columns(pl.lit(today, dtype=pl.Date()).alias(TODAY_COLUMN))
    if duplicated_rows is not None:
        repeated = pl.col(ROW_NUMBER).is_in(duplicated_rows.implode())
        checked = checked.with_columns(repeated.alias(DUPLICATED_COLUMN))
    failures: pl.DataFrame | None = None
    fault: str | None = None
    try:
        with config_context(
            validation_enabled=True, validation_depth=ValidationDepth.SCHEMA_AND_DATA
        ):
            schema.validate(checked, lazy=True)
    except SchemaErrors as errors:
        fault = _shape_fault(errors)
        if fault is None:
            failures = errors.failure_cases.select("check", "index")
    except Exception as error:
        # Other errors may quote data (polars' cast errors do): keep only the type's name.
        fault = type(error).__name__
    # Raised outside the `except` blocks so that the original error is not chained to it.
    if fault is not None:
        raise RuntimeError(f"{SCHEMA_BUG_MESSAGE} [{fault}]")
    if failures is None:
        return empty_issues()
    return _issues_from_failures(failures, frame.get_column(ROW_NUMBER))


def _shape_fault(errors: SchemaErrors) -> str | None:
    """None when every error is a named row check failing on some rows, else what went wrong
    (schema column names and pandera reason codes only)."""
    faults: list[str] = []
    for error in errors.schema_errors:
        name = getattr(error.check, "name", None)
        is_row_check = isinstance(name, str) and CHECK_NAME_SEPARATOR in name
        if error.reason_code is not SchemaErrorReason.DATAFRAME_CHECK or not is_row_check:
            column = getattr(error.schema, "name", None)
            faults.append(f"{column if isinstance(column, str) else '?'}: {error.reason_code.name}")
    if faults:
        return "; ".join(sorted(set(faults)))
    if errors.failure_cases.get_column("index").null_count():
        return "check without row positions"
    return None


def _issues_from_failures(failures: pl.DataFrame, row_numbers: pl.Series) -> pl.DataFrame:
    names = pl.col("check").str.split_exact(CHECK_NAME_SEPARATOR, 1)
    found = failures.select(
        row_numbers.gather(failures.get_column("index")).alias(ROW_NUMBER),
        names.struct.field("field_0").alias("column"),
        names.struct.field("field_1").alias("rule"),
        pl.lit(Severity.ERROR.value).alias("severity"),
    )
    return issue_frame([found]).unique().sort(ROW_NUMBER, "column", "rule")


# --- building the schema -------------------------------------------------------------------


def _build_schema(dataset: Dataset, *, duplicates_given: bool) -> pa.DataFrameSchema:
    rule_checks = _rule_checks(dataset)
    columns: dict[str, pa.Column] = {ROW_NUMBER: pa.Column(pl.Int64, nullable=False)}
    for field in dataset.stored_fields:
        checks = [
            *_field_checks(dataset, field, duplicates_given=duplicates_given),
            *rule_checks.get(field.name, []),
        ]
        columns[validated_column(field)] = pa.Column(
            validated_dtype(field), nullable=True, checks=checks
        )
    for field in dataset.stored_fields:
        if has_presence_helper(field):
            columns[presence_column(field)] = pa.Column(pl.Boolean, nullable=False)
    columns[TODAY_COLUMN] = pa.Column(pl.Date, nullable=False)
    if duplicates_given:
        columns[DUPLICATED_COLUMN] = pa.Column(pl.Boolean, nullable=False)
    return pa.DataFrameSchema(columns, name=dataset.name)


def _row_check(column: str, rule: str, passes: pl.Expr) -> pa.Check:
    """A check that passes where `passes` is true or null."""
    expr = passes.fill_null(True).alias(_CHECK_OUTPUT)

    def run(data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(expr)

    return pa.Check(run, name=check_name(column, rule))


def _field_checks(dataset: Dataset, field: Field, *, duplicates_given: bool) -> list[pa.Check]:
    value = pl.col(validated_column(field))
    checks: list[pa.Check] = []
    if field.required:
        checks.append(_row_check(field.name, REQUIRED, presence_expr(field)))
    in_code_list = code_list_expr(field, value)
    if in_code_list is not None:
        checks.append(_row_check(field.name, CODE_LIST, in_code_list))
    in_range = _in_range(field, value)
    if in_range is not None:
        checks.append(_row_check(field.name, OUT_OF_RANGE, in_range))
    if field.not_in_future:
        checks.append(_row_check(field.name, NOT_IN_FUTURE, value <= pl.col(TODAY_COLUMN)))
    if field.name in dataset.key and duplicates_given:
        checks.append(_given_key_check(field))
    elif field.name in dataset.key:
        checks.append(_key_check(dataset, field))
    return checks


def code_list_expr(field: Field, value: pl.Expr) -> pl.Expr | None:
    """True where `value` is one of the field's codes (every item, for a code list); null for
    null; None when the field has no code list."""
    if not field.codes:
        return None
    if field.kind is Kind.CODES:
        return value.str.contains(_code_list_pattern(field))
    return value.is_in(field.codes)


def _code_list_pattern(field: Field) -> str:
    """Matches `;`-joined items that are all codes of the field (quicker than splitting)."""
    one = "|".join(re.escape(code) for code in field.codes)
    return f"^(?:{one})(?:;(?:{one}))*$"


def _in_range(field: Field, value: pl.Expr) -> pl.Expr | None:
    conditions: list[pl.Expr] = []
    if field.minimum is not None:
        above = value > field.minimum if field.minimum_exclusive else value >= field.minimum
        conditions.append(above)
    if field.maximum is not None:
        conditions.append(value <= field.maximum)
    if field.earliest is not None:
        conditions.append(value >= pl.lit(field.earliest))
    if field.latest is not None:
        conditions.append(value <= pl.lit(field.latest))
    if not conditions:
        return None
    return pl.all_horizontal(conditions)


def _key_check(dataset: Dataset, field: Field) -> pa.Check:
    """Fails each row whose key occurs on another row too, where this key column is present."""
    key_columns = [validated_column(dataset.field(name)) for name in dataset.key]
    this_column = validated_column(field)

    def run(data: pa.PolarsData) -> pl.LazyFrame:
        duplicated = _duplicated_rows(data.lazyframe, key_columns)
        present = data.lazyframe.select(pl.col(this_column).is_not_null())
        return pl.concat([duplicated, present], how="horizontal").select(
            ~(pl.col(_DUPLICATED) & pl.col(this_column)).alias(_CHECK_OUTPUT)
        )

    return pa.Check(run, name=check_name(field.name, DUPLICATE_KEY))


def _given_key_check(field: Field) -> pa.Check:
    """`_key_check` with the repeats found beforehand, across the whole table."""
    present = pl.col(validated_column(field)).is_not_null()
    return _row_check(field.name, DUPLICATE_KEY, ~(pl.col(DUPLICATED_COLUMN) & present))


def duplicated_key_rows(keys: pl.DataFrame, dataset: Dataset) -> pl.Series:
    """The ROW_NUMBERs whose key is repeated, from ROW_NUMBER and the key's validated columns
    of every row of a table (in any order; extra all-blank rows change nothing)."""
    key_columns = [validated_column(dataset.field(name)) for name in dataset.key]
    repeated = _duplicated_rows(keys.lazy(), key_columns).collect().to_series()
    return keys.get_column(ROW_NUMBER).filter(repeated)


_DUPLICATED = "_duplicated"


def _duplicated_rows(frame: pl.LazyFrame, key_columns: list[str]) -> pl.LazyFrame:
    """One Boolean column: the row's key tuple (nulls compared as values) is not unique.

    Grouping distinct strings costs far more than grouping their 64-bit hashes, so rows are
    first narrowed to those whose hash repeats, and only they are compared exactly.
    """
    key_hash = (
        pl.struct(key_columns).hash() if len(key_columns) > 1 else pl.col(key_columns[0]).hash()
    )
    indexed = (
        frame.select(key_columns).with_row_index("_position").with_columns(key_hash.alias("_hash"))
    )
    exact = (
        indexed.filter(pl.len().over("_hash") > 1)
        .filter(pl.len().over(key_columns) > 1)
        .select("_position", pl.lit(True).alias(_DUPLICATED))
    )
    return indexed.join(exact, on="_position", how="left", maintain_order="left").select(
        pl.col(_DUPLICATED).fill_null(False)
    )


# --- cross-field rules ---------------------------------------------------------------------


def _rule_checks(dataset: Dataset) -> dict[str, list[pa.Check]]:
    """The checks of `dataset.rules`, by the field each one reports on."""
    checks: dict[str, list[pa.Check]] = {}
    for rule in dataset.rules:
        passes = _RULE_EXPRESSIONS[type(rule)](dataset, rule)
        checks.setdefault(rule.column, []).append(_row_check(rule.column, rule.rule, passes))
    return checks


def _value(dataset: Dataset, name: str) -> pl.Expr:
    return pl.col(validated_column(dataset.field(name)))


def _present(dataset: Dataset, name: str) -> pl.Expr:
    return presence_expr(dataset.field(name))


def _on_or_after(dataset: Dataset, rule: RowRule) -> pl.Expr:
    assert isinstance(rule, OnOrAfter)
    return _value(dataset, rule.later) >= _value(dataset, rule.earlier)


def _condition_holds(dataset: Dataset, name: str, equals: tuple[str, ...]) -> pl.Expr:
    if not equals:
        return _present(dataset, name)
    return _value(dataset, name).is_in(equals).fill_null(False)


def _required_when(dataset: Dataset, rule: RowRule) -> pl.Expr:
    assert isinstance(rule, RequiredWhen)
    condition = _condition_holds(dataset, rule.condition_field, rule.equals)
    return ~condition | _present(dataset, rule.target)


def _required_unless(dataset: Dataset, rule: RowRule) -> pl.Expr:
    assert isinstance(rule, RequiredUnless)
    exempt = _condition_holds(dataset, rule.condition_field, rule.equals)
    return exempt | _present(dataset, rule.target)


def _only_when_blank(dataset: Dataset, rule: RowRule) -> pl.Expr:
    assert isinstance(rule, OnlyWhenBlank)
    return ~(_present(dataset, rule.target) & _present(dataset, rule.other))


def _one_required(dataset: Dataset, rule: RowRule) -> pl.Expr:
    assert isinstance(rule, OneRequired)
    return pl.any_horizontal([_present(dataset, name) for name in rule.fields])


def _child_age_in_trial(dataset: Dataset, rule: RowRule) -> pl.Expr:
    assert isinstance(rule, ChildAgeInTrial)
    # Turning 18 after the window opens is the same as being born after this day.
    born_after = TRIAL_START.replace(year=TRIAL_START.year - 18)
    is_role = _value(dataset, rule.role_field) == rule.role
    return ~is_role.fill_null(False) | (_value(dataset, rule.birth_field) > pl.lit(born_after))


_RULE_EXPRESSIONS: dict[type, Callable[[Dataset, RowRule], pl.Expr]] = {
    OnOrAfter: _on_or_after,
    RequiredWhen: _required_when,
    RequiredUnless: _required_unless,
    OnlyWhenBlank: _only_when_blank,
    OneRequired: _one_required,
    ChildAgeInTrial: _child_age_in_trial,
}
