"""Reading a submitted file into raw tables: one per dataset found, every cell still text.

The file's type is sniffed from its content, never its name: a ZIP container is an XLSX workbook
when it holds `[Content_Types].xml` and `xl/workbook.xml`, otherwise a ZIP of returns; anything
else is read as CSV. Each *unit* (a CSV file, or one sheet of a workbook) whose header row is
recognised becomes one `RawTable`. Units that are not recognised are ignored with a warning when
something else in the file was recognised, and reject the file when nothing was.

No value from the file reaches an issue, an exception or a log: issues name units, rows by
number and columns by letter. Errors raised by the CSV and XLSX libraries can quote the file, so
they are caught and replaced, never passed on.

Decisions where the specification is silent:

- The header row is the first row with any non-blank cell; row numbers are those a spreadsheet
  shows (the CSV's record number, blank lines included; the sheet's own row number).
- A row whose recognised cells are all blank is not a data row (Excel writes `,,,` rows).
- A CSV row with more cells than the header row, where the extra cells are not blank, rejects
  the unit: it is almost always an unquoted comma that shifted the row's values into the wrong
  columns, and loading it would store them under the wrong fields. Shorter rows are padded.
- A column with a blank header that holds data is reported as an unknown column and ignored.
- Members of a ZIP are numbered from 1 in archive order, counting files only (directories and
  `__MACOSX/` entries are skipped). A ZIP may hold at most `MAX_ZIP_MEMBERS` files.
- Hidden sheets are read like visible ones. An ignored sheet or ZIP member's warning carries the
  header-matching detail (closest dataset, missing columns), so an LA can tell a notes sheet from
  a return whose header went wrong.
- Workbook cells arrive as text from calamine: date cells as `YYYY-MM-DD HH:MM:SS`, whole
  numbers without `.0` (`123`, never `123.0`), booleans as `true`/`false`, error cells (`#N/A`)
  as blank. A number in a date column is left as text and read as an Excel serial by `parse`.
- The unpacked-size limit applies to a workbook's own parts too (an XLSX is a ZIP), and every
  part is decompressed against it before calamine opens the workbook.
- A password-protected or broken ZIP member is an error; an old `.xls` member is ignored with a
  warning that says so.
"""

from __future__ import annotations

import csv
import io
import lzma
import threading
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import fastexcel
import polars as pl

from schemas.contract import Dataset, Treatment, normalise_header
from schemas.headers import HeaderMatch, column_letter, detect_dataset, unknown_column_issues
from schemas.outcome import ROW_NUMBER, FileIssue, RawTable, ReadResult
from schemas.rules import (
    EMPTY_FILE,
    SHEET_IGNORED,
    UNKNOWN_COLUMN,
    UNREADABLE_FILE,
    ZIP_MEMBER_IGNORED,
    ZIP_NESTED,
    ZIP_TOO_LARGE,
    Severity,
)

DEFAULT_MAX_UNPACKED_BYTES = 512 * 2**20
MAX_ZIP_MEMBERS = 1000

_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls, or a password-protected .xlsx
_ARCHIVE_MAGICS = (
    _ZIP_MAGIC,
    _EMPTY_ZIP_MAGIC,
    b"\x1f\x8b",  # gzip
    b"7z\xbc\xaf\x27\x1c",
    b"Rar!\x1a\x07",
    b"BZh",
    b"\xfd7zXZ\x00",
)
_XLSX_PARTS = ("[Content_Types].xml", "xl/workbook.xml")
_UTF8_BOM = b"\xef\xbb\xbf"
_MAX_CSV_COLUMNS = 16384  # Excel's own limit
_MAX_ROWS_LISTED = 10
_CHUNK = 2**20
# What zipfile raises for broken, truncated or unsupported archives.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    zipfile.LargeZipFile,
    NotImplementedError,
    RuntimeError,
    OSError,
    EOFError,
    ValueError,
)


class _TooLarge(Exception):
    """The unpacked content would exceed the budget."""


@dataclass
class _Budget:
    """Bytes that may still be unpacked from the submission."""

    limit: int

    def __post_init__(self) -> None:
        self.remaining = self.limit

    def check(self, size: int) -> None:
        if size > self.remaining:
            raise _TooLarge

    def take(self, size: int) -> None:
        self.check(size)
        self.remaining -= size


@dataclass
class _Unit:
    """One CSV file or one sheet, recognised (table and/or issues) or not (`unrecognised`)."""

    source: str
    ignored_rule: str
    table: RawTable | None = None
    issues: list[FileIssue] = field(default_factory=list)
    unrecognised: FileIssue | None = None


def read_submission(
    content: bytes, *, max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES
) -> ReadResult:
    """Read one submitted file (CSV, XLSX or a ZIP of them) into raw tables and file issues."""
    if not content or content.isspace():
        return ReadResult([], [FileIssue(EMPTY_FILE, Severity.ERROR)])
    if content.startswith((_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)):
        return _read_zip_container(content, _Budget(max_unpacked_bytes))
    if content.startswith(_OLE_MAGIC):
        return ReadResult([], [_old_excel_issue(Severity.ERROR, "")])
    return _combine([_csv_unit(content, source="", ignored_rule=ZIP_MEMBER_IGNORED)], [])


# --- combining units -----------------------------------------------------------------------


def _combine(units: list[_Unit], issues: list[FileIssue]) -> ReadResult:
    """Recognised units give tables; the rest are ignored, unless nothing was recognised."""
    tables = [u.table for u in units if u.table is not None]
    recognised = [u for u in units if u.unrecognised is None]
    if recognised or not units:
        for unit in units:
            issues.extend(unit.issues if unit.unrecognised is None else [_ignored(unit)])
        return ReadResult(tables, issues)
    with_header = [u for u in units if u.unrecognised and u.unrecognised.rule != EMPTY_FILE]
    if not with_header:
        return ReadResult([], [*issues, FileIssue(EMPTY_FILE, Severity.ERROR)])
    issues.extend(replace(u.unrecognised, where=u.source) for u in with_header if u.unrecognised)
    return ReadResult([], issues)


def _ignored(unit: _Unit) -> FileIssue:
    assert unit.unrecognised is not None
    detail = unit.unrecognised.detail
    if unit.unrecognised.rule == EMPTY_FILE:
        detail = "it is empty"
    return FileIssue(unit.ignored_rule, Severity.WARNING, where=unit.source, detail=detail)


def _old_excel_issue(severity: Severity, where: str) -> FileIssue:
    rule = UNREADABLE_FILE if severity is Severity.ERROR else ZIP_MEMBER_IGNORED
    detail = "an old-format (.xls) or password-protected Excel file; save it as XLSX or CSV"
    return FileIssue(rule, severity, where=where, detail=detail)


def _reraise_unless_library_error(error: BaseException) -> None:
    """Let interrupts through; swallow what polars or calamine raised, since it may quote data.

    A Rust panic reaches Python as pyo3's PanicException, a BaseException whose class is
    private to each extension module, hence the test by name.
    """
    if isinstance(error, Exception) or type(error).__name__ == "PanicException":
        return
    raise error


def _join(prefix: str, part: str) -> str:
    return f"{prefix}, {part}" if prefix else part


# --- CSV -----------------------------------------------------------------------------------


def _csv_unit(content: bytes, *, source: str, ignored_rule: str) -> _Unit:
    data = _as_utf8(content)
    if data is None:
        issue = FileIssue(UNREADABLE_FILE, Severity.ERROR, where=source, detail="not CSV text")
        return _Unit(source, ignored_rule, issues=[issue])
    grid = _csv_grid(data)
    if grid is None:
        detail = "the CSV could not be parsed (check its quotes and the cells in each row)"
        issue = FileIssue(UNREADABLE_FILE, Severity.ERROR, where=source, detail=detail)
        return _Unit(source, ignored_rule, issues=[issue])
    frame, header_fields = grid
    positions = list(range(frame.width))
    return _unit_from_grid(
        frame,
        positions,
        source=source,
        ignored_rule=ignored_rule,
        from_excel=False,
        header_fields=header_fields,
    )


def _as_utf8(content: bytes, *, validate: bool = True) -> bytes | None:
    """UTF-8 (BOM removed) as is, else Windows-1252 re-encoded; None when it is not text.

    With `validate` off, text that is not ASCII is taken to be UTF-8 without decoding it
    (0.1 s for 160 MB): polars refuses a piece that is not, and the reader then falls back.
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
        _reraise_unless_library_error(error)
        # Only the message says why polars failed; it is read here and never passed on.
        if "more fields" not in str(error):
            return None
    first_record_width = _first_record_width(data)
    width = max(2 * first_record_width, first_record_width + 16)
    while width <= _MAX_CSV_COLUMNS:
        try:
            return _read_csv(data, width=width), first_record_width
        except BaseException as error:
            _reraise_unless_library_error(error)
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


# --- XLSX ----------------------------------------------------------------------------------


def _xlsx_units(content: bytes, *, prefix: str, budget: _Budget) -> list[_Unit] | FileIssue:
    """One unit per sheet, or the issue that makes the workbook unreadable."""
    unreadable = FileIssue(UNREADABLE_FILE, Severity.ERROR, where=prefix, detail="broken XLSX")
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as workbook:
            _unpack_all(workbook, budget)
    except _ZIP_ERRORS:
        return unreadable
    try:
        reader = fastexcel.read_excel(content)
        sheet_count = len(reader.sheet_names)
    except BaseException as error:  # calamine's errors can quote the file: never pass them on
        _reraise_unless_library_error(error)
        return unreadable
    return [_sheet_unit(reader, index, prefix=prefix) for index in range(sheet_count)]


def _sheet_unit(reader: fastexcel.ExcelReader, index: int, *, prefix: str) -> _Unit:
    source = _join(prefix, f"sheet {index + 1}")
    try:
        # skip_rows=0 keeps the blank rows above the table, so row i is sheet row i + 1.
        sheet = reader.load_sheet(index, header_row=None, skip_rows=0, dtypes="string")
        grid = sheet.to_polars()
        positions = [column.absolute_index for column in sheet.available_columns()]
    except BaseException as error:  # calamine's errors can quote the file: never pass them on
        _reraise_unless_library_error(error)
        issue = FileIssue(UNREADABLE_FILE, Severity.ERROR, where=source, detail="unreadable sheet")
        return _Unit(source, SHEET_IGNORED, issues=[issue])
    return _unit_from_grid(
        grid, positions, source=source, ignored_rule=SHEET_IGNORED, from_excel=True
    )


# --- ZIP -----------------------------------------------------------------------------------


def _read_zip_container(content: bytes, budget: _Budget) -> ReadResult:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            if all(part in archive.namelist() for part in _XLSX_PARTS):
                units = _xlsx_units(content, prefix="", budget=budget)
                return _combine(units, []) if isinstance(units, list) else ReadResult([], [units])
            return _read_zip_of_returns(archive, budget)
    except _TooLarge:
        detail = f"more than {budget.limit:,} bytes unpacked"
        return ReadResult([], [FileIssue(ZIP_TOO_LARGE, Severity.ERROR, detail=detail)])
    except _ZIP_ERRORS:
        return ReadResult([], [FileIssue(UNREADABLE_FILE, Severity.ERROR, detail="broken ZIP")])


def _read_zip_of_returns(archive: zipfile.ZipFile, budget: _Budget) -> ReadResult:
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
    units: list[_Unit] = []
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
    return _combine(units, issues)


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, number: int, budget: _Budget
) -> list[_Unit] | FileIssue:
    """The units of one ZIP member, or the one issue that stands for it."""
    where = f"ZIP member {number}"
    if info.flag_bits & 0x1:
        detail = "the file is password-protected"
        return FileIssue(UNREADABLE_FILE, Severity.ERROR, where=where, detail=detail)
    try:
        content = _unpack(archive, info, budget)
    except _ZIP_ERRORS:
        return FileIssue(UNREADABLE_FILE, Severity.ERROR, where=where, detail="broken ZIP member")
    if content.startswith(_ZIP_MAGIC) and _is_xlsx(content):
        return _xlsx_units(content, prefix=where, budget=budget)
    if content.startswith(_ARCHIVE_MAGICS):
        return FileIssue(ZIP_NESTED, Severity.ERROR, where=where)
    if content.startswith(_OLE_MAGIC):
        return _old_excel_issue(Severity.WARNING, where)
    if not content or content.isspace():
        return [
            _Unit(where, ZIP_MEMBER_IGNORED, unrecognised=FileIssue(EMPTY_FILE, Severity.ERROR))
        ]
    if _as_utf8(content) is None:
        detail = "not a CSV or XLSX file"
        return FileIssue(ZIP_MEMBER_IGNORED, Severity.WARNING, where=where, detail=detail)
    return [_csv_unit(content, source=where, ignored_rule=ZIP_MEMBER_IGNORED)]


def _is_xlsx(content: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as inner:
            names = set(inner.namelist())
    except _ZIP_ERRORS:
        return False
    return all(part in names for part in _XLSX_PARTS)


def _unpack(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget) -> bytes:
    """A member's bytes, read in chunks against the budget: a header's size is not trusted."""
    chunks = list(_chunks(archive, info, budget))
    return b"".join(chunks)


def _unpack_all(archive: zipfile.ZipFile, budget: _Budget) -> None:
    """Decompress every part of a workbook against the budget, before calamine opens it."""
    budget.check(sum(info.file_size for info in archive.infolist()))
    for info in archive.infolist():
        for _ in _chunks(archive, info, budget):
            pass


def _chunks(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget) -> Iterator[bytes]:
    with archive.open(info) as stream:
        while chunk := stream.read(min(_CHUNK, budget.remaining + 1)):
            budget.take(len(chunk))
            yield chunk


# --- from a grid of text cells to a raw table ----------------------------------------------


def _unit_from_grid(
    grid: pl.DataFrame,
    positions: list[int],
    *,
    source: str,
    ignored_rule: str,
    from_excel: bool,
    header_fields: int | None = None,
) -> _Unit:
    """Find the header, recognise the dataset and cut the data rows out of a grid of text.

    `positions` are the grid columns' 0-based spreadsheet positions. `header_fields` is how many
    cells the CSV's first record has, when some later record has more.
    """
    unit = _Unit(source, ignored_rule)
    grid = grid.rename(dict(zip(grid.columns, (f"c{p}" for p in positions), strict=True)))
    header_index = _first_non_blank_row(grid)
    if header_index is None:
        unit.unrecognised = FileIssue(EMPTY_FILE, Severity.ERROR)
        return unit
    header = _header_cells(grid, header_index, positions)
    match = detect_dataset(header)
    if match.dataset is None:
        unit.unrecognised = match.issue
        return unit
    body = grid.slice(header_index + 1).with_columns(
        (pl.int_range(pl.len(), dtype=pl.Int64) + header_index + 2).alias(ROW_NUMBER)
    )
    width = _header_width(header, header_index, header_fields)
    too_long = _rows_with_cells_beyond(body, positions, width)
    if too_long:
        detail = f"{_describe_rows(too_long)} more cells than the header row"
        unit.issues.append(FileIssue(UNREADABLE_FILE, Severity.ERROR, where=source, detail=detail))
        return unit
    unit.issues.extend(unknown_column_issues(match, source=source))
    unit.issues.extend(_blank_headed_columns_with_data(body, header, positions, width, source))
    frame = _data_frame(body, match)
    if frame.height == 0:
        unit.issues.append(no_data_rows_issue(match.dataset, source))
        return unit
    unit.table = RawTable(match.dataset, source, frame, from_excel=from_excel)
    return unit


def _non_blank(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars().str.len_bytes().fill_null(0) > 0


def _first_non_blank_row(grid: pl.DataFrame) -> int | None:
    """Index of the first row with a non-blank cell, looking at a slice at a time."""
    if grid.width == 0:
        return None
    step = 1024
    for start in range(0, grid.height, step):
        window = grid.slice(start, step).select(
            pl.any_horizontal(_non_blank(c) for c in grid.columns)
        )
        hits = window.to_series().arg_true()
        if hits.len():
            return start + int(hits[0])
    return None


def _header_cells(grid: pl.DataFrame, header_index: int, positions: list[int]) -> list[str]:
    header = [""] * (max(positions) + 1)
    for position, cell in zip(positions, grid.row(header_index), strict=True):
        header[position] = cell or ""
    return header


def _header_width(header: list[str], header_index: int, header_fields: int | None) -> int | None:
    """How many cells the header row has, when some row may have more (CSV only)."""
    if header_fields is None:
        return None
    if header_index == 0 and header_fields > 0:
        return header_fields
    return max((i + 1 for i, cell in enumerate(header) if normalise_header(cell)), default=0)


def _rows_with_cells_beyond(
    body: pl.DataFrame, positions: list[int], width: int | None
) -> list[int]:
    if width is None:
        return []
    beyond = [f"c{p}" for p in positions if p >= width]
    if not beyond:
        return []
    rows = body.filter(pl.any_horizontal(_non_blank(c) for c in beyond))
    return rows.get_column(ROW_NUMBER).head(_MAX_ROWS_LISTED + 1).to_list()


def _describe_rows(rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:_MAX_ROWS_LISTED])
    if len(rows) > _MAX_ROWS_LISTED:
        return f"rows {shown} and more have"
    return f"row {shown} has" if len(rows) == 1 else f"rows {shown} have"


def _blank_headed_columns_with_data(
    body: pl.DataFrame, header: list[str], positions: list[int], width: int | None, source: str
) -> list[FileIssue]:
    blank_headed = [
        p for p in positions if not normalise_header(header[p]) and (width is None or p < width)
    ]
    if not blank_headed:
        return []
    has_data = body.select(_non_blank(f"c{p}").any() for p in blank_headed).row(0)
    return [
        _blank_headed_issue(p, source)
        for p, found in zip(blank_headed, has_data, strict=True)
        if found
    ]


def _blank_headed_issue(position: int, source: str) -> FileIssue:
    detail = "cells under a blank header were ignored"
    where = _join(source, f"column {column_letter(position)}")
    return FileIssue(UNKNOWN_COLUMN, Severity.WARNING, where=where, detail=detail)


def _data_frame(body: pl.DataFrame, match: HeaderMatch) -> pl.DataFrame:
    """ROW_NUMBER + the recognised columns, stripped, blank rows out, dropped fields gone.

    Dropped columns are only looked at to tell a data row from a blank one: they are never
    copied, stripped or kept.
    """
    assert match.dataset is not None
    dropped = {f.name for f in match.dataset.fields if f.treatment is Treatment.DROP}
    recognised = sorted(match.columns)
    kept = [p for p in recognised if match.columns[p] not in dropped]
    kept_cells = [f"c{p}" for p in kept]
    dropped_cells = [f"c{p}" for p in recognised if p not in kept]
    stripped = pl.col(kept_cells).str.strip_chars()
    return (
        body.lazy()
        .select(
            ROW_NUMBER,
            pl.when(stripped.str.len_bytes() > 0).then(stripped).name.keep(),
            pl.any_horizontal(False, *(_non_blank(c) for c in dropped_cells)).alias(_DROPPED_DATA),
        )
        .filter(pl.any_horizontal(pl.col(_DROPPED_DATA), pl.col(kept_cells).is_not_null()))
        .select(ROW_NUMBER, *(pl.col(f"c{p}").alias(match.columns[p]) for p in kept))
        .collect()
    )


_DROPPED_DATA = "_dropped_data"


# --- a large CSV, a slice at a time --------------------------------------------------------


class WholeFileNeeded(RuntimeError):
    """A slice of the CSV could not be read the way the whole file would be.

    Usually a record further down has more cells than the first record: `read_submission` has
    rules for that (extra blank cells are fine, extra data rejects the file) which need the
    whole file at once. Check the file with `read_submission` instead.
    """


@dataclass(frozen=True)
class CsvLayout:
    """Where the table of a plain CSV file is, found from its first records alone.

    Reading the body with `csv_slices` and `data_rows` gives exactly the rows `read_submission`
    would, a slice at a time.
    """

    data: bytes = field(repr=False)  # the file as UTF-8
    width: int  # cells in the first record: every record is read as this many
    header_index: int  # 0-based record number of the header row
    match: HeaderMatch
    issues: tuple[FileIssue, ...]  # header warnings, as `read_submission` gives them
    blank_headed: tuple[int, ...]  # positions of blank header cells: data there is warned of
    bytes_per_record: float  # in the sample, to size the slices

    @property
    def dataset(self) -> Dataset:
        assert self.match.dataset is not None
        return self.match.dataset

    def positions(self, names: set[str]) -> list[int]:
        """The positions of the recognised columns with these canonical names."""
        return sorted(p for p, name in self.match.columns.items() if name in names)


def csv_layout(content: bytes, *, sample_rows: int = 1000) -> CsvLayout | None:
    """The layout of a plain CSV whose table can be read a slice at a time, else None.

    None for anything `read_submission` treats specially: ZIP, XLSX and old Excel files, text
    that is not UTF-8 in the sample, no header in the first `sample_rows` records, a header
    that matches no dataset, or a sample record wider than the first. Text further down that
    is not UTF-8 is found by the slice that holds it (WholeFileNeeded).
    """
    if not content or content.isspace() or content.startswith(_NOT_PLAIN_CSV):
        return None
    # Not decoded here: a slice holding text that is not UTF-8 cannot be parsed, and raises
    # WholeFileNeeded (polars checks every byte of a piece, whichever columns it reads).
    data = _as_utf8(content, validate=False)
    if data is None:
        return None
    try:
        sample = _read_csv_sample(data, sample_rows)
    except BaseException as error:
        _reraise_unless_library_error(error)
        return None
    positions = list(range(sample.width))
    grid = sample.rename({c: f"c{p}" for p, c in zip(positions, sample.columns, strict=True)})
    header_index = _first_non_blank_row(grid)
    if header_index is None:
        return None
    header = _header_cells(grid, header_index, positions)
    match = detect_dataset(header)
    if match.dataset is None:
        return None
    return CsvLayout(
        data=data,
        width=sample.width,
        header_index=header_index,
        match=match,
        issues=tuple(unknown_column_issues(match, source="")),
        blank_headed=tuple(p for p in positions if not normalise_header(header[p])),
        bytes_per_record=_bytes_per_record(data),
    )


_NOT_PLAIN_CSV = (_ZIP_MAGIC, _EMPTY_ZIP_MAGIC, _OLE_MAGIC)
_SAMPLE_BYTES = 2**20


def _read_csv_sample(data: bytes, rows: int) -> pl.DataFrame:
    """About the first `rows` records (polars, even told `n_rows`, reads further)."""
    position = 0
    for _ in range(rows):
        position = data.find(b"\n", position) + 1
        if position == 0:
            position = len(data)
            break
    start = data[: _cut_after(data, 0, position)]
    return pl.read_csv(start, has_header=False, infer_schema=False, raise_if_empty=False)


def _bytes_per_record(data: bytes) -> float:
    """Bytes per line at the start of the file (records are lines, unless quoted)."""
    lines = data.count(b"\n", 0, _SAMPLE_BYTES) + 1
    return min(len(data), _SAMPLE_BYTES) / lines


CsvPieces = tuple[tuple[int, int], ...]
"""(start, end) byte offsets of the pieces a CSV is cut into, in file order."""


def csv_pieces(layout: CsvLayout, *, chunk_rows: int) -> CsvPieces:
    """Where to cut the file into pieces of about `chunk_rows` records: (start, end) offsets.

    Cuts fall at line ends outside quotes (an even number of `"` before them, which is how
    polars tells records apart) and next to no blank line, so each piece parses on its own.
    """
    target = max(int(chunk_rows * layout.bytes_per_record), 1)
    quoted = b'"' in layout.data  # finding none is about 3 times quicker than counting them
    bounds: list[tuple[int, int]] = []
    start = 0
    while start < len(layout.data):
        end = _cut_after(layout.data, start, start + target, quoted=quoted)
        bounds.append((start, end))
        start = end
    return tuple(bounds)


class _RecordsBefore:
    """How many records the pieces before a piece hold: known once the piece before is read."""

    def __init__(self, count: int | None = None) -> None:
        self._known = threading.Event()
        self._count = count
        if count is not None:
            self._known.set()

    def give(self, count: int | None) -> None:
        """The count, or None when the piece before could not be read."""
        self._count = count
        self._known.set()

    def wait(self) -> int:
        self._known.wait()
        if self._count is None:
            raise WholeFileNeeded("an earlier piece of the CSV could not be read")
        return self._count


class CsvSlice:
    """One piece of a large CSV, parsed by `read` in whichever thread checks it.

    Numbering the records needs the count of those in the pieces before, so `read` parses
    first and then waits for the piece before to have been parsed (not checked): pieces read
    in several threads, taken in file order, wait only for each other's parsing.
    """

    def __init__(
        self,
        piece: bytes,
        layout: CsvLayout,
        positions: list[int] | None,
        before: _RecordsBefore,
        after: _RecordsBefore,
    ) -> None:
        self._piece = piece
        self._layout = layout
        self._positions = positions
        self._before = before
        self._after = after

    def read(self) -> pl.DataFrame:
        """The records after the header: ROW_NUMBER and `c<position>` for the positions."""
        schema: dict[str, pl.DataType] = {f"c{p}": pl.String() for p in range(self._layout.width)}
        try:
            records = _read_piece(self._piece, schema, self._positions)
            before = self._before.wait()
        except BaseException:
            self._after.give(None)
            raise
        self._after.give(before + records.height)
        del self._piece
        numbered = records.with_row_index(_RECORD, offset=before)
        body = numbered.filter(pl.col(_RECORD) > self._layout.header_index)
        return body.select(
            (pl.col(_RECORD).cast(pl.Int64) + 1).alias(ROW_NUMBER), pl.exclude(_RECORD)
        )


def csv_slices(
    layout: CsvLayout,
    pieces: CsvPieces,
    *,
    positions: list[int] | None = None,
) -> Iterator[CsvSlice]:
    """The file's `csv_pieces`, each to be `read` once, in order or by threads taking them in
    order: ROW_NUMBER and `c<position>` for every position (None: all of them).

    Memory holds the pieces being read. Reading every position is how a record wider than the
    first is noticed (WholeFileNeeded).
    """
    before = _RecordsBefore(0)
    for start, end in pieces:
        after = _RecordsBefore()
        yield CsvSlice(layout.data[start:end], layout, positions, before, after)
        before = after


_RECORD = "_record"


def _read_piece(
    piece: bytes, schema: dict[str, pl.DataType], positions: list[int] | None
) -> pl.DataFrame:
    try:
        return pl.read_csv(
            piece,
            has_header=False,
            schema=schema,
            missing_columns="insert",
            columns=positions,
            raise_if_empty=False,
        )
    except BaseException as error:
        _reraise_unless_library_error(error)
    # Raised here, not in the `except` block, so that polars' message (which may quote the
    # file) is not attached as the context.
    raise WholeFileNeeded("the CSV cannot be read a slice at a time")


def _cut_after(data: bytes, start: int, wanted: int, *, quoted: bool = True) -> int:
    """The first line end at or after `wanted` that is outside quotes and has a non-blank line
    on either side; the end of the data when there is none. `quoted` False says the data
    has no `"` at all, so there is nothing to count."""
    if wanted >= len(data):
        return len(data)
    quotes = data.count(b'"', start, wanted) if quoted else 0
    position = wanted
    while (newline := data.find(b"\n", position)) >= 0:
        if quoted:
            quotes += data.count(b'"', position, newline)
        if quotes % 2 == 0 and _between_lines(data, newline):
            return newline + 1
        position = newline + 1
    return len(data)


def _between_lines(data: bytes, newline: int) -> bool:
    """Is the line end at `newline` between two non-blank lines?"""
    before = data[newline - 1 : newline] if newline else b""
    if before == b"\r":
        before = data[newline - 2 : newline - 1] if newline > 1 else b""
    after = data[newline + 1 : newline + 2]
    return before not in (b"", b"\n") and after not in (b"", b"\r", b"\n")


def data_rows(layout: CsvLayout, records: pl.DataFrame) -> pl.DataFrame:
    """A slice's data rows as `read_submission`'s table has them (ROW_NUMBER, kept fields).

    `records` must hold every recognised position (`csv_slices` with positions None does).
    """
    return _data_frame(records, layout.match)


def raw_columns(layout: CsvLayout, records: pl.DataFrame, names: set[str]) -> pl.DataFrame:
    """ROW_NUMBER and the named recognised columns of a slice, stripped, blank as null.

    Blank rows are kept (a row's blankness depends on columns not read here).
    """
    cells = {f"c{p}": layout.match.columns[p] for p in layout.positions(names)}
    stripped = pl.col(list(cells)).str.strip_chars()
    return records.select(
        ROW_NUMBER, pl.when(stripped.str.len_bytes() > 0).then(stripped).name.keep()
    ).rename(cells)


def blank_headed_columns(layout: CsvLayout, records: pl.DataFrame) -> set[int]:
    """The blank-headed positions holding data in this slice (read with those positions)."""
    if not layout.blank_headed:
        return set()
    found = records.select(_non_blank(f"c{p}").any() for p in layout.blank_headed).row(0)
    return {p for p, has_data in zip(layout.blank_headed, found, strict=True) if has_data}


def blank_headed_issues(positions: set[int]) -> list[FileIssue]:
    """The warnings `read_submission` gives for blank-headed columns holding data."""
    return [_blank_headed_issue(p, "") for p in sorted(positions)]


def no_data_rows_issue(dataset: Dataset, source: str = "") -> FileIssue:
    detail = f"recognised as {dataset.name}, but there are no data rows"
    return FileIssue(EMPTY_FILE, Severity.ERROR, where=source, detail=detail)
