"""Reading a CSV file into one unit: its text decoded, its records parsed as text cells.

UTF-8 (with or without a BOM) is read as is; anything else is taken to be Windows-1252, which
is what Excel on Windows writes. Records are parsed by polars, every cell as text; a record
wider than the first makes polars refuse the file, so it is parsed again at a width wide
enough for every record, and the grid decides whether the extra cells matter.
"""

from __future__ import annotations

import csv
import io

import polars as pl

from schemas.outcome import FileIssue
from schemas.reader.grid import unit_from_grid
from schemas.reader.library_errors import reraise_unless_library_error
from schemas.reader.units import Unit
from schemas.rules import UNREADABLE_FILE, Severity

_UTF8_BOM = b"\xef\xbb\xbf"
_MAX_CSV_COLUMNS = 16384  # Excel's own limit


def csv_unit(content: bytes, *, source: str, ignored_rule: str) -> Unit:
    data = as_utf8(content)
    if data is None:
        issue = FileIssue(UNREADABLE_FILE, Severity.ERROR, where=source, detail="not CSV text")
        return Unit(source, ignored_rule, issues=[issue])
    grid = _csv_grid(data)
    if grid is None:
        detail = "the CSV could not be parsed (check its quotes and the cells in each row)"
        issue = FileIssue(UNREADABLE_FILE, Severity.ERROR, where=source, detail=detail)
        return Unit(source, ignored_rule, issues=[issue])
    frame, header_fields = grid
    positions = list(range(frame.width))
    return unit_from_grid(
        frame,
        positions,
        source=source,
        ignored_rule=ignored_rule,
        from_excel=False,
        header_fields=header_fields,
    )


def as_utf8(content: bytes, *, validate: bool = True) -> bytes | None:
    """UTF-8 (BOM removed) as is, else Windows-1252 re-encoded; None when it is not text.

    With `validate` off, text that is not ASCII is taken to be UTF-8 without decoding it,
    which saves a pass over a large file: polars refuses a piece that is not, and the reader
    then falls back.
    """
    if b"\x00" in content:
        return None
    content = content.removeprefix(_UTF8_BOM)
    if b"\n" not in content and b"\r" in content:
        content = content.replace(b"\r", b"\n")  # classic Mac line ends
    if not validate or content.isascii():
        return content
    try:
        content.decode("utf-8")
        return content
    except UnicodeDecodeError:
        pass
    try:
        return content.decode("cp1252").encode("utf-8")
    except UnicodeDecodeError:
        return None


def _csv_grid(data: bytes) -> tuple[pl.DataFrame, int | None] | None:
    """Every record of the CSV as String columns, and how many cells its first record has.

    The count is None when the first record is as wide as the widest, so nothing is too long.
    """
    try:
        return _read_csv(data, width=None), None
    except BaseException as error:
        reraise_unless_library_error(error)
        # Only the message says why polars failed; it is read here and never passed on.
        if "more fields" not in str(error):
            return None
    first_record_width = _first_record_width(data)
    width = max(2 * first_record_width, first_record_width + 16)
    while width <= _MAX_CSV_COLUMNS:
        try:
            return _read_csv(data, width=width), first_record_width
        except BaseException as error:
            reraise_unless_library_error(error)
            width *= 2
    return None


def _first_record_width(data: bytes) -> int:
    """Cells in the first record (0 when unknown); only read when a later record is wider."""
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")
    try:
        return len(next(csv.reader(text), []))
    except csv.Error:
        return 0


def _read_csv(data: bytes, *, width: int | None) -> pl.DataFrame:
    schema = None if width is None else {f"column_{i + 1}": pl.String for i in range(width)}
    return pl.read_csv(
        data,
        has_header=False,
        infer_schema=False,
        schema=schema,
        missing_columns="insert" if schema else None,
        raise_if_empty=False,
    )
