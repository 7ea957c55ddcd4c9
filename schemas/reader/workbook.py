"""Reading an XLSX workbook into units, one per sheet, through calamine (fastexcel).

Decisions where the specification is silent:

- Hidden sheets are read like visible ones.
- Workbook cells arrive as text from calamine: date cells as `YYYY-MM-DD HH:MM:SS`, whole
  numbers without `.0` (`123`, never `123.0`), booleans as `true`/`false`, error cells (`#N/A`)
  as blank. A number in a date column is left as text and read as an Excel serial by `parse`.
- The unpacked-size limit applies to a workbook's own parts too (an XLSX is a ZIP), and every
  part is decompressed against it before calamine opens the workbook, its XML checked on the
  way against the bounds of `workbook_bounds` (a workbook beyond them is refused unread).
"""

from __future__ import annotations

import io
import zipfile

import fastexcel

from schemas.outcome import FileIssue
from schemas.reader.grid import unit_from_grid
from schemas.reader.library_errors import ZIP_ERRORS, reraise_unless_library_error
from schemas.reader.units import Unit, join_where
from schemas.reader.unpacking import Budget
from schemas.reader.workbook_bounds import NotPlainXml, OutOfBounds, check_workbook
from schemas.rules import SHEET_IGNORED, UNREADABLE_FILE, XLSX_OUT_OF_BOUNDS, Severity

XLSX_PARTS = ("[Content_Types].xml", "xl/workbook.xml")


def is_xlsx(content: bytes) -> bool:
    """Is this ZIP a workbook: does it hold `[Content_Types].xml` and `xl/workbook.xml`?"""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as inner:
            names = set(inner.namelist())
    except ZIP_ERRORS:
        return False
    return all(part in names for part in XLSX_PARTS)


def xlsx_units(content: bytes, *, prefix: str, budget: Budget) -> list[Unit] | FileIssue:
    """One unit per sheet, or the issue that makes the workbook unreadable."""
    unreadable = FileIssue(UNREADABLE_FILE, Severity.ERROR, where=prefix, detail="broken XLSX")
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as workbook:
            check_workbook(workbook, budget)
    except OutOfBounds as error:
        return FileIssue(XLSX_OUT_OF_BOUNDS, Severity.ERROR, where=prefix, detail=str(error))
    except NotPlainXml as error:
        return FileIssue(UNREADABLE_FILE, Severity.ERROR, where=prefix, detail=str(error))
    except ZIP_ERRORS:
        return unreadable
    try:
        reader = fastexcel.read_excel(content)
        sheet_count = len(reader.sheet_names)
    except BaseException as error:  # calamine's errors can quote the file: never pass them on
        reraise_unless_library_error(error)
        return unreadable
    return [_sheet_unit(reader, index, prefix=prefix) for index in range(sheet_count)]


def _sheet_unit(reader: fastexcel.ExcelReader, index: int, *, prefix: str) -> Unit:
    source = join_where(prefix, f"sheet {index + 1}")
    try:
        # skip_rows=0 keeps the blank rows above the table, so row i is sheet row i + 1.
        sheet = reader.load_sheet(index, header_row=None, skip_rows=0, dtypes="string")
        grid = sheet.to_polars()
        positions = [column.absolute_index for column in sheet.available_columns()]
    except BaseException as error:  # calamine's errors can quote the file: never pass them on
        reraise_unless_library_error(error)
        issue = FileIssue(UNREADABLE_FILE, Severity.ERROR, where=source, detail="unreadable sheet")
        return Unit(source, SHEET_IGNORED, issues=[issue])
    return unit_from_grid(
        grid, positions, source=source, ignored_rule=SHEET_IGNORED, from_excel=True
    )
