"""Checking one submitted file end to end: the one function the pipeline and the LA checker share.

read -> parse -> pseudonymise -> validate -> coarsen -> split into clean and rejected rows.

Decisions where the specification is silent:

- An `la_code` column is compared with the drop's LA code as text after stripping white space;
  blank cells are ignored. One differing value in any table rejects the whole file: every
  table in it is refused with LA_CODE_MISMATCH, nothing parsed or tokenised (the spec: "a file
  that carries an LA code column whose value differs from its drop is rejected whole"). The
  column is never stored.
- A row is rejected when it has any ERROR issue, from parsing or validation; warnings (a failing
  NHS number, UPN or postcode) never reject a row. `rules` on a rejected row is the sorted,
  `;`-joined set of the rules it broke.
- A cell that failed parsing (DATE_FORMAT, MAX_LENGTH, ...) became null; the validation issues
  that null then causes on the same row and column (`required`, `required_unless_...`) are not
  reported again: the parse error is the one the LA needs to fix.
- A code cell that is not one of its field's codes is blanked in `rejected` (it is free text
  from the file as far as the service can tell); the issue still names the row and column.
- No raw value a rule refused is kept (`rejected` is stored, in quarantine): on a rejected row,
  every cell an ERROR names is null unless it is stored as a token or coarsened (a keyed HMAC,
  a month or a district: the form clean rows keep), and every free-text cell (`team`) is null
  whatever rule the row broke, since a row that broke one may have its columns shifted and
  names or case notes where a team should be. `rules` and the issues still say what failed.
- `clean` and `rejected` columns: ROW_NUMBER, then `stored_columns(dataset)` (`rejected` adds
  `rules`). For `score15` the stored columns end with the derived Float64 scores: the three
  subscales under their `SUBSCALES` names and `total_score` (see `score15_scores`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import polars as pl

from pseudonymise.tokens import Tokeniser
from schemas.contract import LA_CODE_COLUMN, Dataset, Field, Kind, Treatment
from schemas.datasets.score15 import SCORE15, SUBSCALES
from schemas.models import code_list_expr, validate_rows
from schemas.outcome import (
    ROW_NUMBER,
    FileIssue,
    RawTable,
    SubmissionOutcome,
    TableOutcome,
    empty_issues,
    issue_frame,
)
from schemas.parse import DTYPES, parse_table
from schemas.reader import read_submission
from schemas.rules import LA_CODE_MISMATCH, NO_VALID_ROWS, Severity
from schemas.treatment import coarsen_table, pseudonymise_table

RULES_COLUMN = "rules"
TOTAL_SCORE = "total_score"


def check_submission(
    content: bytes, *, la_code: str, tokeniser: Tokeniser, today: date
) -> SubmissionOutcome:
    """Everything the service learns from one file; nothing in the result holds a raw value."""
    read = read_submission(content)
    if any(_la_code_differs(table.frame, la_code) for table in read.tables):
        tables = refused_for_la_code(read.tables, la_code)
    else:
        tables = [
            check_table(table, la_code=la_code, tokeniser=tokeniser, today=today)
            for table in read.tables
        ]
    return SubmissionOutcome(
        la_code=la_code, key_id=tokeniser.key_id, tables=tables, file_issues=list(read.issues)
    )


def check_table(
    table: RawTable, *, la_code: str, tokeniser: Tokeniser, today: date
) -> TableOutcome:
    """One dataset of a submission, pseudonymised, validated and split."""
    if _la_code_differs(table.frame, la_code):
        return _refused(table, la_code_mismatch_issue(table.source))
    rows = checked_rows(table, la_code=la_code, tokeniser=tokeniser, today=today)
    return TableOutcome(
        dataset=table.dataset.name,
        source=table.source,
        rows_received=table.frame.height,
        clean=rows.clean,
        rejected=rows.rejected,
        issues=rows.issues,
        file_issues=table_issues(rows.clean.height, table.source),
    )


@dataclass(frozen=True)
class CheckedRows:
    """Some rows of a table, pseudonymised, validated and split (see `TableOutcome`)."""

    clean: pl.DataFrame
    rejected: pl.DataFrame
    issues: pl.DataFrame


def checked_rows(
    table: RawTable,
    *,
    la_code: str,
    tokeniser: Tokeniser,
    today: date,
    duplicated_rows: pl.Series | None = None,
    known_tokens: Mapping[str, pl.Series] | None = None,
) -> CheckedRows:
    """Parse, pseudonymise, validate and split the rows of `table` (the LA code checked).

    `table` may be a slice of a bigger table when `duplicated_rows` says which rows of the
    whole table repeat a key (see `validate_rows`); `known_tokens` are passed on to
    `pseudonymise_table`.
    """
    dataset = table.dataset
    typed, parse_issues = parse_table(table, today=today)
    pseudonymised, warnings = pseudonymise_table(
        typed, dataset, tokeniser, la_code, known_tokens=known_tokens
    )
    del typed  # raw identifiers are kept no longer than needed
    validation_issues = validate_rows(
        pseudonymised, dataset, today=today, duplicated_rows=duplicated_rows
    )
    stored = with_derived_columns(coarsen_table(pseudonymised, dataset), dataset)
    stored = _without_unknown_codes(stored, dataset)
    issues = _combined_issues(parse_issues, warnings, validation_issues)
    clean, rejected = _split_rows(stored, issues)
    return CheckedRows(clean, _without_refused_values(rejected, issues, dataset), issues)


def table_issues(clean_rows: int, source: str) -> list[FileIssue]:
    """The issues with a whole table that has this many clean rows."""
    if clean_rows:
        return []
    # Loading nothing would replace the LA's earlier return with an empty one.
    return [FileIssue(NO_VALID_ROWS, Severity.ERROR, source)]


def la_code_mismatch_issue(source: str) -> FileIssue:
    return FileIssue(LA_CODE_MISMATCH, Severity.ERROR, source, LA_CODE_COLUMN)


def refused_for_la_code(tables: list[RawTable], la_code: str) -> list[TableOutcome]:
    """Every table of a file in which some table names another LA, refused unparsed.

    The file is rejected whole: a table whose own LA code matches (or that has none) still
    came in a file that claims to be partly another LA's.
    """
    differs = [_la_code_differs(t.frame, la_code) for t in tables]
    named = "; ".join(_where(t) for t, d in zip(tables, differs, strict=True) if d)
    return [
        _refused(t, la_code_mismatch_issue(t.source) if d else _with_the_file(t.source, named))
        for t, d in zip(tables, differs, strict=True)
    ]


def _with_the_file(source: str, differing: str) -> FileIssue:
    detail = f"Rejected with the whole file: the la_code column differs in {differing}"
    return FileIssue(LA_CODE_MISMATCH, Severity.ERROR, source, detail)


def _where(table: RawTable) -> str:
    return f"{table.dataset.name} ({table.source})" if table.source else table.dataset.name


# --- the stored shape ----------------------------------------------------------------------


def stored_columns(dataset: Dataset) -> tuple[str, ...]:
    """The dataset's stored columns in declaration order, derived columns last."""
    return tuple(clean_column_types(dataset))[1:]


def clean_column_types(dataset: Dataset) -> dict[str, pl.DataType]:
    """Every column of a `clean` frame and its dtype, in order: ROW_NUMBER first."""
    types: dict[str, pl.DataType] = {ROW_NUMBER: pl.Int64()}
    types |= {f.stored_name: DTYPES[f.kind] for f in dataset.stored_fields}
    if dataset.name == SCORE15.name:
        types |= {name: pl.Float64() for name in (*SUBSCALES, TOTAL_SCORE)}
    return types


def rejected_column_types(dataset: Dataset) -> dict[str, pl.DataType]:
    return clean_column_types(dataset) | {RULES_COLUMN: pl.String()}


def with_derived_columns(stored: pl.DataFrame, dataset: Dataset) -> pl.DataFrame:
    if dataset.name != SCORE15.name:
        return stored
    return stored.with_columns(score15_scores()).with_columns(score15_total())


def score15_scores() -> list[pl.Expr]:
    """The three SCORE-15 subscales, scored so that a higher score means more difficulty.

    Each is the mean of its answered items (items of the problem-worded subscales reversed as
    6 - answer), or null when more than one of its five items is blank. An answer outside 1-5
    (which also rejects the row) counts as blank, so a rejected row never shows an impossible
    score.
    """
    scores = []
    for name, (numbers, reverse) in SUBSCALES.items():
        answers = [_scored_answer(SCORE15.field(f"item_{n:02d}"), reverse) for n in numbers]
        blanks = pl.sum_horizontal([answer.is_null() for answer in answers])
        scores.append(pl.when(blanks <= 1).then(pl.mean_horizontal(answers)).alias(name))
    return scores


def score15_total() -> pl.Expr:
    """The total: the mean of the three subscale scores, null when any of them is null.

    The specification says the total is "the mean of its items" and null when any subscale is;
    the mean of the three subscale means is used, which weighs the subscales equally when one of
    them has a blank item (with no blanks it equals the mean of the 15 scored items).
    """
    subscales = [pl.col(name) for name in SUBSCALES]
    all_present = pl.all_horizontal([s.is_not_null() for s in subscales])
    return pl.when(all_present).then(pl.mean_horizontal(subscales)).alias(TOTAL_SCORE)


def _scored_answer(field: Field, reverse: bool) -> pl.Expr:
    answer = pl.col(field.name)
    if field.minimum is not None and field.maximum is not None:
        answer = pl.when(answer.is_between(field.minimum, field.maximum)).then(answer)
    return (6 - answer if reverse else answer).cast(pl.Float64)


def _without_unknown_codes(stored: pl.DataFrame, dataset: Dataset) -> pl.DataFrame:
    """Blank every code cell that is not one of its field's codes.

    Such a cell is arbitrary text from the file (a name pasted into the wrong column, say), and
    rejected rows are stored; the issue names the row, column and rule, which is all the LA
    needs. Clean rows have no such cells.
    """
    blanked = []
    for field in dataset.stored_fields:
        value = pl.col(field.stored_name)
        in_list = code_list_expr(field, value)
        if in_list is not None:
            blanked.append(pl.when(in_list).then(value).alias(field.stored_name))
    return stored.with_columns(blanked)


def _without_refused_values(
    rejected: pl.DataFrame, issues: pl.DataFrame, dataset: Dataset
) -> pl.DataFrame:
    """Rejected rows with every cell a rule refused, and all free text, nulled (see the module)."""
    if rejected.is_empty():
        return rejected
    errors = issues.filter(pl.col("severity") == Severity.ERROR.value)
    nulled = []
    for field in dataset.stored_fields:
        if field.treatment is not Treatment.KEEP:
            continue  # tokens and coarsened values: what clean rows store too
        if field.kind is Kind.TEXT:
            nulled.append(pl.lit(None, dtype=DTYPES[field.kind]).alias(field.stored_name))
            continue
        refused = errors.filter(pl.col("column") == field.name).get_column(ROW_NUMBER)
        if refused.len():
            kept = ~pl.col(ROW_NUMBER).is_in(refused.implode())
            nulled.append(pl.when(kept).then(pl.col(field.stored_name)).alias(field.stored_name))
    return rejected.with_columns(nulled)


# --- issues and the split ------------------------------------------------------------------


def _combined_issues(
    parse_issues: pl.DataFrame, warnings: pl.DataFrame, validation_issues: pl.DataFrame
) -> pl.DataFrame:
    parse_errors = parse_issues.filter(pl.col("severity") == Severity.ERROR.value)
    follow_ons = validation_issues.join(
        parse_errors.select(ROW_NUMBER, "column"), on=[ROW_NUMBER, "column"], how="anti"
    )
    return (
        issue_frame([parse_issues, warnings, follow_ons])
        .unique()
        .sort(ROW_NUMBER, "column", "rule")
    )


def _split_rows(stored: pl.DataFrame, issues: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    broken = (
        issues.filter(pl.col("severity") == Severity.ERROR.value)
        .group_by(ROW_NUMBER)
        .agg(pl.col("rule").unique().sort().str.join(";").alias(RULES_COLUMN))
    )
    is_broken = pl.col(ROW_NUMBER).is_in(broken.get_column(ROW_NUMBER).implode())
    clean = stored.filter(~is_broken)
    rejected = stored.filter(is_broken).join(
        broken, on=ROW_NUMBER, how="left", maintain_order="left"
    )
    return clean, rejected


# --- the LA code ---------------------------------------------------------------------------


def _la_code_differs(raw: pl.DataFrame, la_code: str) -> bool:
    if LA_CODE_COLUMN not in raw.columns:
        return False
    given = raw.get_column(LA_CODE_COLUMN).cast(pl.String).str.strip_chars()
    differs = given.is_not_null() & (given != "") & (given != la_code.strip())
    return bool(differs.any())


def _refused(table: RawTable, issue: FileIssue) -> TableOutcome:
    return TableOutcome(
        dataset=table.dataset.name,
        source=table.source,
        rows_received=table.frame.height,
        clean=pl.DataFrame(schema=clean_column_types(table.dataset)),
        rejected=pl.DataFrame(schema=rejected_column_types(table.dataset)),
        issues=empty_issues(),
        file_issues=[issue],
    )


def la_code_differs(raw: pl.DataFrame, la_code: str) -> bool:
    """Does a non-blank `la_code` cell of these raw rows name another LA?"""
    return _la_code_differs(raw, la_code)
