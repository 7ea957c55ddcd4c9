"""Reading a ZIP container: an XLSX workbook, or a ZIP of returns (CSV and XLSX members).

A ZIP container is a workbook when it holds `[Content_Types].xml` and `xl/workbook.xml`,
otherwise a ZIP of returns.

Decisions where the specification is silent:

- Members of a ZIP are numbered from 1 in archive order, counting files only (directories and
  `__MACOSX/` entries are skipped). A ZIP may hold at most `MAX_ZIP_MEMBERS` files.
- A ZIP inside the ZIP (or any other archive) is refused, not unpacked.
- A password-protected or broken ZIP member is an error; an old `.xls` member is ignored with a
  warning that says so.
"""

from __future__ import annotations

import io
import zipfile

from schemas.outcome import FileIssue, ReadResult
from schemas.reader.csv_file import as_utf8, csv_unit
from schemas.reader.library_errors import ZIP_ERRORS
from schemas.reader.signatures import ARCHIVE_MAGICS, OLE_MAGIC, ZIP_MAGIC, old_excel_issue
from schemas.reader.units import Unit, combine
from schemas.reader.unpacking import Budget, TooLarge, unpack
from schemas.reader.workbook import XLSX_PARTS, is_xlsx, xlsx_units
from schemas.rules import (
    EMPTY_FILE,
    UNREADABLE_FILE,
    ZIP_MEMBER_IGNORED,
    ZIP_NESTED,
    ZIP_TOO_LARGE,
    Severity,
)

MAX_ZIP_MEMBERS = 1000


def read_zip_container(content: bytes, budget: Budget) -> ReadResult:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            if all(part in archive.namelist() for part in XLSX_PARTS):
                units = xlsx_units(content, prefix="", budget=budget)
                return combine(units, []) if isinstance(units, list) else ReadResult([], [units])
            return _read_zip_of_returns(archive, budget)
    except TooLarge:
        detail = f"more than {budget.limit:,} bytes unpacked"
        return ReadResult([], [FileIssue(ZIP_TOO_LARGE, Severity.ERROR, detail=detail)])
    except ZIP_ERRORS:
        return ReadResult([], [FileIssue(UNREADABLE_FILE, Severity.ERROR, detail="broken ZIP")])


def _read_zip_of_returns(archive: zipfile.ZipFile, budget: Budget) -> ReadResult:
    members = [
        info
        for info in archive.infolist()
        if not info.is_dir() and not info.filename.startswith("__MACOSX/")
    ]
    if not members:
        return ReadResult([], [FileIssue(EMPTY_FILE, Severity.ERROR, detail="the ZIP is empty")])
    if len(members) > MAX_ZIP_MEMBERS:
        detail = f"more than {MAX_ZIP_MEMBERS} files"
        return ReadResult([], [FileIssue(ZIP_TOO_LARGE, Severity.ERROR, detail=detail)])
    budget.check(sum(info.file_size for info in members))
    units: list[Unit] = []
    issues: list[FileIssue] = []
    for number, info in enumerate(members, start=1):
        member = _read_member(archive, info, number, budget)
        if isinstance(member, FileIssue):
            issues.append(member)
        else:
            units.extend(member)
    if not units and not any(i.severity is Severity.ERROR for i in issues):
        detail = "the ZIP holds no CSV or XLSX file"
        issues.append(FileIssue(UNREADABLE_FILE, Severity.ERROR, detail=detail))
    return combine(units, issues)


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, number: int, budget: Budget
) -> list[Unit] | FileIssue:
    """The units of one ZIP member, or the one issue that stands for it."""
    where = f"ZIP member {number}"
    if info.flag_bits & 0x1:
        detail = "the file is password-protected"
        return FileIssue(UNREADABLE_FILE, Severity.ERROR, where=where, detail=detail)
    try:
        content = unpack(archive, info, budget)
    except ZIP_ERRORS:
        return FileIssue(UNREADABLE_FILE, Severity.ERROR, where=where, detail="broken ZIP member")
    if content.startswith(ZIP_MAGIC) and is_xlsx(content):
        return xlsx_units(content, prefix=where, budget=budget)
    if content.startswith(ARCHIVE_MAGICS):
        return FileIssue(ZIP_NESTED, Severity.ERROR, where=where)
    if content.startswith(OLE_MAGIC):
        return old_excel_issue(Severity.WARNING, where)
    if not content or content.isspace():
        return [Unit(where, ZIP_MEMBER_IGNORED, unrecognised=FileIssue(EMPTY_FILE, Severity.ERROR))]
    if as_utf8(content) is None:
        detail = "not a CSV or XLSX file"
        return FileIssue(ZIP_MEMBER_IGNORED, Severity.WARNING, where=where, detail=detail)
    return [csv_unit(content, source=where, ignored_rule=ZIP_MEMBER_IGNORED)]
