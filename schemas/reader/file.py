"""Reading one submitted file: its type sniffed from its content, then read as CSV or a ZIP.

A ZIP container (an XLSX workbook, or a ZIP of returns) goes to `zip_archive`; an old or
password-protected Excel file is refused with a message that says how to save it; anything
else is read as CSV.
"""

from __future__ import annotations

from schemas.outcome import FileIssue, ReadResult
from schemas.reader.csv_file import csv_unit
from schemas.reader.signatures import EMPTY_ZIP_MAGIC, OLE_MAGIC, ZIP_MAGIC, old_excel_issue
from schemas.reader.units import combine
from schemas.reader.unpacking import DEFAULT_MAX_UNPACKED_BYTES, Budget
from schemas.reader.zip_archive import read_zip_container
from schemas.rules import EMPTY_FILE, ZIP_MEMBER_IGNORED, Severity


def read_submission(
    content: bytes, *, max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES
) -> ReadResult:
    """Read one submitted file (CSV, XLSX or a ZIP of them) into raw tables and file issues."""
    if not content or content.isspace():
        return ReadResult([], [FileIssue(EMPTY_FILE, Severity.ERROR)])
    if content.startswith((ZIP_MAGIC, EMPTY_ZIP_MAGIC)):
        return read_zip_container(content, Budget(max_unpacked_bytes))
    if content.startswith(OLE_MAGIC):
        return ReadResult([], [old_excel_issue(Severity.ERROR, "")])
    return combine([csv_unit(content, source="", ignored_rule=ZIP_MEMBER_IGNORED)], [])
