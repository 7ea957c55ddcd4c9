"""Building submitted files (CSV, ZIP, XLSX) and reading them, for the reader's tests.

Shared by the `test_reader_*` modules. Every file is built inside the test, and `_read` checks
every issue it gets for the canary text the files carry, because no value from a file may ever
reach an issue.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from dataclasses import astuple
from datetime import datetime

import polars as pl
import xlsxwriter  # type: ignore[import-untyped]

from schemas.outcome import FileIssue, RawTable, ReadResult
from schemas.reader import read_submission
from schemas.rules import Severity

CANARY = "Zoë-Canary"
KEYWORKER_HEADER = "keyworker_id,first_name,team,role,start_date"


def _read(content: bytes, **kwargs: int) -> ReadResult:
    result = read_submission(content, **kwargs)
    _assert_no_canary(result.issues)
    return result


def _assert_no_canary(issues: Sequence[FileIssue]) -> None:
    for issue in issues:
        for part in astuple(issue):
            assert "Canary" not in str(part)
            assert "canary" not in str(part)


def _rules(result: ReadResult) -> list[tuple[str, Severity, str]]:
    return [(i.rule, i.severity, i.where) for i in result.issues]


def _only_table(result: ReadResult) -> RawTable:
    assert len(result.tables) == 1, result.issues
    return result.tables[0]


def _only_frame(result: ReadResult) -> pl.DataFrame:
    return _only_table(result).frame


def _csv(*lines: str, end: str = "\n") -> bytes:
    return (end.join(lines) + end).encode()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _xlsx(sheets: dict[str, list[tuple[int, int, object]]]) -> bytes:
    """A workbook from (row, column, value) cells, 0-based, one entry per sheet."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    date_format = workbook.add_format({"num_format": "dd/mm/yyyy"})
    for name, cells in sheets.items():
        sheet = workbook.add_worksheet(name)
        for row, column, value in cells:
            if isinstance(value, datetime):
                sheet.write_datetime(row, column, value, date_format)
            else:
                sheet.write(row, column, value)
    workbook.close()
    return buffer.getvalue()


def _row_cells(
    row: int, values: Sequence[object], first_column: int = 0
) -> list[tuple[int, int, object]]:
    return [(row, first_column + i, v) for i, v in enumerate(values) if v is not None]


def _keyworker_sheet(first_row: int = 0, first_column: int = 0) -> list[tuple[int, int, object]]:
    header = [
        "keyworker_id",
        "first_name",
        "team",
        "role",
        "start_date",
        "fte",
        "social_work_qualified",
    ]
    rows: list[list[object]] = [
        [123, CANARY, "North", "KEYWORKER", datetime(2024, 9, 1), 0.5, True],
        ["000123", None, "  South  ", "keyworker", 45536, 1, "Y"],
        [],
        [1e20, None, None, "TEAM_MANAGER", "01/09/2024", 1.0, False],
    ]
    cells = _row_cells(first_row, header, first_column)
    for offset, values in enumerate(rows, start=1):
        cells += _row_cells(first_row + offset, values, first_column)
    return cells
