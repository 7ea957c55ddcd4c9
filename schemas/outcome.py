"""What reading and checking a submission produces: shared by the pipeline and the LA checker.

Nothing in these types may hold a value from the file once a `TableOutcome` is built: frames hold
tokens, codes, coarsened dates and numbers; issues hold row numbers, column names and rule names.
`RawTable` is the one exception: it lives only in memory between reading and pseudonymisation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import polars as pl

from schemas.contract import Dataset
from schemas.rules import Severity

# The row's number in the LA's own file as a spreadsheet shows it: the header is row 1.
ROW_NUMBER = "row_number"

ISSUE_SCHEMA: dict[str, pl.DataType] = {
    ROW_NUMBER: pl.Int64(),
    "column": pl.String(),
    "rule": pl.String(),
    "severity": pl.String(),
}


def issue_frame(parts: Iterable[pl.DataFrame] = ()) -> pl.DataFrame:
    """Issue rows in `ISSUE_SCHEMA`: the parts (each with the schema's four columns) one after
    another, cast to the schema's types; no parts, no rows."""
    frames = list(parts)
    if not frames:
        return pl.DataFrame(schema=ISSUE_SCHEMA)
    return pl.concat(frames).cast(ISSUE_SCHEMA)  # type: ignore[arg-type]


def empty_issues() -> pl.DataFrame:
    return issue_frame()


@dataclass(frozen=True)
class FileIssue:
    """A problem with a whole file, sheet or dataset, described without any value from it.

    `where` locates it ("sheet 2", "column F", "ZIP member 3"); `detail` may name datasets and
    columns of the specification, never text taken from the file.
    """

    rule: str
    severity: Severity
    where: str = ""
    detail: str = ""


def file_issue_rows(issues: Sequence[FileIssue]) -> pl.DataFrame:
    """Issues with a whole file or table as issue rows (row number and column null)."""
    rows = {
        ROW_NUMBER: [None] * len(issues),
        "column": [None] * len(issues),
        "rule": [i.rule for i in issues],
        "severity": [str(i.severity) for i in issues],
    }
    return issue_frame([pl.DataFrame(rows)])


@dataclass
class RawTable:
    """One dataset found in a file: canonical column names, every cell still raw text.

    Lives in memory only, inside one step, until pseudonymisation.
    """

    dataset: Dataset
    source: str  # "" for a plain CSV; "sheet 2", "ZIP member 1", "ZIP member 1, sheet 2"
    frame: pl.DataFrame  # ROW_NUMBER (Int64) + one pl.String column per recognised field
    # Read from an XLSX sheet: a number in a date column is an Excel serial date.
    from_excel: bool = False


@dataclass
class ReadResult:
    tables: list[RawTable]
    issues: list[FileIssue] = field(default_factory=list)


@dataclass
class TableOutcome:
    """One dataset of a submission after pseudonymisation and validation."""

    dataset: str
    source: str
    rows_received: int
    clean: pl.DataFrame  # stored columns only, + ROW_NUMBER
    rejected: pl.DataFrame  # stored columns + ROW_NUMBER + "rules" (';'-joined rule names)
    issues: pl.DataFrame  # ISSUE_SCHEMA: one row per (row, column, rule)
    file_issues: list[FileIssue] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not any(i.severity is Severity.ERROR for i in self.file_issues)

    @property
    def rows_loaded(self) -> int:
        return self.clean.height if self.accepted else 0

    @property
    def rows_rejected(self) -> int:
        return self.rejected.height


@dataclass
class CountedTable(TableOutcome):
    """A table checked and loaded a chunk at a time (`schemas.chunked`): its issues are kept
    for the report, its rows only counted (`clean` and `rejected` are empty frames with the
    table's columns)."""

    clean_rows: int = 0
    rejected_rows: int = 0

    @property
    def rows_loaded(self) -> int:
        return self.clean_rows if self.accepted else 0

    @property
    def rows_rejected(self) -> int:
        return self.rejected_rows


@dataclass
class SubmissionOutcome:
    """Everything the service learned from one file, safe to store and report."""

    la_code: str
    key_id: str
    tables: list[TableOutcome]
    file_issues: list[FileIssue] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        """The file is accepted when it is readable and at least one dataset in it is accepted."""
        file_ok = not any(i.severity is Severity.ERROR for i in self.file_issues)
        return file_ok and any(t.accepted for t in self.tables)

    @property
    def accepted_in_full(self) -> bool:
        """Every row of every dataset would load (warnings allowed)."""
        return (
            self.accepted
            and all(t.accepted for t in self.tables)
            and all(t.rows_rejected == 0 for t in self.tables)
        )
