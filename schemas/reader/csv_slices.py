"""A large plain CSV read a slice at a time, giving exactly the rows `read_submission` would.

The layout (header row, dataset, width) is found from the first records alone; the file is
then cut into pieces at record boundaries, and each piece is parsed on its own, in whichever
thread checks it. Memory holds the pieces being read, not the file's rows. A file the slices
cannot read the way the whole file would be read raises `WholeFileNeeded`, and is read whole.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import polars as pl

from schemas.contract import Dataset, normalise_header
from schemas.headers import HeaderMatch, detect_dataset, unknown_column_issues
from schemas.outcome import ROW_NUMBER, FileIssue
from schemas.reader.csv_file import as_utf8
from schemas.reader.grid import (
    blank_headed_issue,
    data_frame,
    first_non_blank_row,
    header_cells,
    non_blank,
)
from schemas.reader.library_errors import reraise_unless_library_error
from schemas.reader.signatures import EMPTY_ZIP_MAGIC, OLE_MAGIC, ZIP_MAGIC


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
    data = as_utf8(content, validate=False)
    if data is None:
        return None
    try:
        sample = _read_csv_sample(data, sample_rows)
    except BaseException as error:
        reraise_unless_library_error(error)
        return None
    positions = list(range(sample.width))
    grid = sample.rename({c: f"c{p}" for p, c in zip(positions, sample.columns, strict=True)})
    header_index = first_non_blank_row(grid)
    if header_index is None:
        return None
    header = header_cells(grid, header_index, positions)
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


_NOT_PLAIN_CSV = (ZIP_MAGIC, EMPTY_ZIP_MAGIC, OLE_MAGIC)
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
    quoted = b'"' in layout.data  # finding none is quicker than counting them
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
        reraise_unless_library_error(error)
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
    return data_frame(records, layout.match)


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
    found = records.select(non_blank(f"c{p}").any() for p in layout.blank_headed).row(0)
    return {p for p, has_data in zip(layout.blank_headed, found, strict=True) if has_data}


def blank_headed_issues(positions: set[int]) -> list[FileIssue]:
    """The warnings `read_submission` gives for blank-headed columns holding data."""
    return [blank_headed_issue(p, "") for p in sorted(positions)]
