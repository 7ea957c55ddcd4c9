"""File signatures: what a submitted file or a ZIP member is, told from its first bytes.

The type is sniffed from the content, never the name: LAs rename files, and a name is not
evidence of what is inside.
"""

from __future__ import annotations

from schemas.outcome import FileIssue
from schemas.rules import UNREADABLE_FILE, ZIP_MEMBER_IGNORED, Severity

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls, or a password-protected .xlsx
ARCHIVE_MAGICS = (
    ZIP_MAGIC,
    EMPTY_ZIP_MAGIC,
    b"\x1f\x8b",  # gzip
    b"7z\xbc\xaf\x27\x1c",
    b"Rar!\x1a\x07",
    b"BZh",
    b"\xfd7zXZ\x00",
)


def old_excel_issue(severity: Severity, where: str) -> FileIssue:
    """The issue for an OLE file: an error for the submission itself, a warning for a member."""
    rule = UNREADABLE_FILE if severity is Severity.ERROR else ZIP_MEMBER_IGNORED
    detail = "an old-format (.xls) or password-protected Excel file; save it as XLSX or CSV"
    return FileIssue(rule, severity, where=where, detail=detail)
