"""A workbook's XML inspected before calamine opens it: bounds on its cells and its text.

calamine builds a sheet as one dense grid from A1 to its farthest cell, and copies a shared
string into every cell that uses it. A 2 KB workbook with one cell at `XFD1048576` (a legal
address) makes it ask for 512 GB and abort the process, which no `except` can catch; one at
`F10000000` takes gigabytes. So every part is streamed once, decompressed against the
unpacking budget, and the workbook is refused (`OutOfBounds`, `NotPlainXml`) when:

- an XML part declares a DTD or entities (`<!DOCTYPE`, `<!ENTITY`: XXE, billion laughs) or is
  not UTF-8;
- a cell (or a sheet's `dimension`) lies beyond `WorkbookBounds.columns` or `.rows`, or a
  sheet's grid (rows times columns, from A1 to its farthest cell) or its count of cell
  elements is over `.cells`;
- the shared strings, copied into every cell that uses them, come to more than
  `.shared_text_bytes`, each string counted at its XML length (at least its text's).

Cells are placed as calamine places them: by their `r` reference, else just after the cell
before in the row; rows by their `r`, else after the row before. The scan reads the raw bytes
with regular expressions, so no XML parser (and nothing a DTD could expand) sees the file
first. Where it cannot tell, it assumes the worst: a shared-string cell whose index it cannot
read counts as the longest string.
"""

from __future__ import annotations

import re
import zipfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from schemas.reader.unpacking import Budget, chunks
from schemas.reader.usual_cells import column_number, usual_cells

XLSX_MAX_COLUMNS = 256  # the old .xls limit; the widest dataset has a few dozen columns
XLSX_MAX_ROWS = 1_048_576  # Excel's own limit
XLSX_MAX_CELLS = 10_000_000  # calamine's grid takes about 50 bytes a cell
XLSX_MAX_SHARED_TEXT_BYTES = 256 * 2**20


@dataclass(frozen=True)
class WorkbookBounds:
    columns: int = XLSX_MAX_COLUMNS
    rows: int = XLSX_MAX_ROWS
    cells: int = XLSX_MAX_CELLS
    shared_text_bytes: int = XLSX_MAX_SHARED_TEXT_BYTES


class OutOfBounds(Exception):
    """The workbook is larger than allowed; the message says how, free of the file's values."""


class NotPlainXml(Exception):
    """An XML part declares a DTD or entities, or is not UTF-8."""


def check_workbook(
    archive: zipfile.ZipFile, budget: Budget, bounds: WorkbookBounds | None = None
) -> None:
    """Decompress every part against the budget and check the bounds; raise when out of them."""
    bounds = bounds or WorkbookBounds()
    parts = archive.infolist()
    budget.check(sum(info.file_size for info in parts))
    shared = [info for info in parts if info.filename.lower() == _SHARED_STRINGS]
    strings = _SharedStrings()
    for info in shared:
        strings.scan(archive, info, budget)
    for info in parts:
        if info in shared:
            continue
        if _is_xml(info.filename):
            _scan_part(archive, info, budget, bounds, strings)
        else:
            for _ in chunks(archive, info, budget):
                pass


def _scan_part(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    budget: Budget,
    bounds: WorkbookBounds,
    strings: _SharedStrings,
) -> None:
    remaining = budget.remaining
    scan = _SheetScan(bounds, strings)
    if not scan.fast(archive, info, budget):
        budget.remaining = remaining  # the part is read again, from its start
        scan = _SheetScan(bounds, strings)
        scan.walk(archive, info, budget)
    strings.used += scan.shared_text


_SHARED_STRINGS = "xl/sharedstrings.xml"
_SHEET_FOLDERS = ("xl/worksheets/", "xl/dialogsheets/", "xl/chartsheets/")
_XML_SUFFIXES = (".xml", ".rels", ".vml")


def _is_xml(name: str) -> bool:
    lowered = name.lower()
    return lowered.endswith(_XML_SUFFIXES) or lowered.startswith(_SHEET_FOLDERS)


_PREFIX = rb"(?:[A-Za-z_][\w.-]*:)?"
_ATTRIBUTES = rb"((?:[^<>\"']|\"[^\"]*\"|'[^']*')*)"
_DECLARATION = re.compile(rb"<!\s*(?i:doctype|entity)")
_SHEET_TAG = re.compile(rb"<(/?)" + _PREFIX + rb"(row|c|dimension)(?=[\s/>])" + _ATTRIBUTES + b">")
_STRING_TAG = re.compile(rb"<(/?)" + _PREFIX + rb"(si|t|rPh)(?=[\s/>])" + _ATTRIBUTES + b">")
_DIMENSION = re.compile(rb"<" + _PREFIX + rb"dimension(?=[\s/>])" + _ATTRIBUTES + b">")
_R = re.compile(rb"(?:^|\s)r\s*=\s*[\"']\s*([A-Za-z]*)([0-9]+)\s*[\"']")
_REF = re.compile(rb"(?:^|\s)ref\s*=\s*[\"']([^\"']*)[\"']")
_CELL_REF = re.compile(rb"([A-Za-z]*)([0-9]+)")
_SHARED_TYPE = re.compile(rb"(?:^|\s)t\s*=\s*[\"']s[\"']")
_VALUE = re.compile(rb"\s*<" + _PREFIX + rb"v(?:\s[^<>]*)?>\s*([0-9]{1,12})\s*<")


def _xml_pieces(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget, *, declarations: bool = True
) -> Iterator[tuple[int, bytes]]:
    """(offset, piece): the part in pieces that each end just before a `<`, so that no tag is
    cut in two; each checked for declarations (unless the caller does), for its encoding."""
    carry = b""
    offset = 0
    for chunk in chunks(archive, info, budget):
        if b"\x00" in chunk or (offset == 0 and chunk.startswith((b"\xff\xfe", b"\xfe\xff"))):
            raise NotPlainXml("an XML part is not UTF-8")
        data = carry + chunk
        cut = data.rfind(b"<")
        if cut <= 0:
            carry = data
            continue
        piece, carry = data[:cut], data[cut:]
        yield offset, _without_declarations(piece) if declarations else piece
        offset += len(piece)
    if carry:
        yield offset, _without_declarations(carry) if declarations else carry


def _without_declarations(piece: bytes) -> bytes:
    if b"<!" in piece and _DECLARATION.search(piece):
        raise NotPlainXml("an XML part declares a DTD or entities")
    return piece


def _number(digits: bytes) -> int:
    """Digits as a number; beyond any bound when too long to matter (calamine wraps them)."""
    return int(digits) if len(digits) < 19 else 10**18


class _SharedStrings:
    """The XML length of each shared string, in calamine's order."""

    def __init__(self) -> None:
        self.lengths = array("q")
        # calamine skips a string with no text (or only phonetic text), so later strings move
        # up: then a string's length is bounded by the longest from its position on.
        self.irregular = False
        self.used = 0  # bytes of shared text the sheets scanned so far copy into their cells
        self._suffix_max: array[int] | None = None

    def scan(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget) -> None:
        start, has_text = -1, False
        for offset, piece in _xml_pieces(archive, info, budget):
            for match in _STRING_TAG.finditer(piece):
                closing, name, attributes = match.groups()
                if name == b"si" and not closing:
                    start, has_text = offset + match.start(), False
                    if attributes.endswith(b"/"):
                        self.irregular = True
                elif name == b"si" and start >= 0:
                    self.lengths.append(offset + match.end() - start)
                    self.irregular |= not has_text
                    start = -1
                elif name == b"t" and not closing:
                    has_text = True
                elif name == b"rPh":
                    self.irregular = True

    def bounded_lengths(self) -> array[int]:
        """By index, the most text each string can hold (see `length`)."""
        if not self.irregular:
            return self.lengths
        self.length(0)
        assert self._suffix_max is not None
        return self._suffix_max

    def length(self, index: int | None) -> int:
        """The most text the string at `index` can hold (None: unknown, the longest)."""
        if not self.lengths:
            return 0
        if index is None:
            return max(self.lengths)
        if index >= len(self.lengths):
            return 0
        if not self.irregular:
            return self.lengths[index]
        if self._suffix_max is None:
            self._suffix_max = array("q", self.lengths)
            for i in range(len(self.lengths) - 2, -1, -1):
                self._suffix_max[i] = max(self._suffix_max[i], self._suffix_max[i + 1])
        return self._suffix_max[index]


class _SheetScan:
    """One part's cells, placed as calamine places them, checked against the bounds.

    The usual part, every cell written `<c r="...">`, is read a piece at a time with a few
    searches over the bytes (`fast`); any other part is walked tag by tag (`walk`), which
    places cells without a reference as calamine does, and is slower.
    """

    def __init__(self, bounds: WorkbookBounds, strings: _SharedStrings) -> None:
        self.bounds = bounds
        self.strings = strings
        self.row = 0  # 0-based, as calamine counts
        self.column = 0
        self.cells = 0
        self.last_row = -1
        self.last_column = -1
        self.shared_text = 0

    def fast(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget) -> bool:
        """False, with the bounds unchecked, when a cell is not written the usual way."""
        lengths = np.frombuffer(self.strings.bounded_lengths(), dtype=np.int64)
        for _, piece in _xml_pieces(archive, info, budget, declarations=False):
            cells = usual_cells(piece, lengths)
            if cells is None:
                return False
            self.cells += cells.count
            self.last_row = max(self.last_row, cells.last_row)
            self.last_column = max(self.last_column, cells.last_column)
            self.shared_text += cells.shared_text + cells.unknown_shared * self.strings.length(None)
            if b"dimension" in piece:
                self._dimensions(piece)
            self._check()
        return True

    def walk(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget) -> None:
        for _, piece in _xml_pieces(archive, info, budget):
            for match in _SHEET_TAG.finditer(piece):
                closing, name, attributes = match.groups()
                if name == b"c":
                    if not closing:
                        self._cell(attributes, piece, match.end())
                elif name == b"row":
                    self._row(attributes, closing=bool(closing))
                elif not closing:
                    self._dimension(attributes)
            self._check()

    def _cell(self, attributes: bytes, piece: bytes, end: int) -> None:
        reference = _R.search(attributes)
        if reference is None or not reference.group(1):
            row, column = self.row, self.column
        else:
            row = _number(reference.group(2)) - 1
            column = column_number(reference.group(1)) - 1
        self.column = column + 1
        self.cells += 1
        self.last_row = max(self.last_row, row)
        self.last_column = max(self.last_column, column)
        if _SHARED_TYPE.search(attributes):
            value = _VALUE.match(piece, end)
            self.shared_text += self.strings.length(int(value.group(1)) if value else None)

    def _row(self, attributes: bytes, *, closing: bool) -> None:
        if not closing:
            reference = _R.search(attributes)
            if reference is not None:
                self.row = _number(reference.group(2)) - 1
            if not attributes.endswith(b"/"):
                return
        self.row += 1
        self.column = 0

    def _dimensions(self, piece: bytes) -> None:
        for match in _DIMENSION.finditer(piece):
            self._dimension(match.group(1))

    def _dimension(self, attributes: bytes) -> None:
        reference = _REF.search(attributes)
        for letters, digits in _CELL_REF.findall(reference.group(1) if reference else b""):
            if _number(digits) > self.bounds.rows or column_number(letters) > self.bounds.columns:
                raise OutOfBounds(self._beyond())

    def _check(self) -> None:
        bounds = self.bounds
        if self.last_row >= bounds.rows or self.last_column >= bounds.columns:
            raise OutOfBounds(self._beyond())
        grid = (self.last_row + 1) * (self.last_column + 1)
        if max(grid, self.cells) > bounds.cells:
            raise OutOfBounds(f"a sheet spans more than {bounds.cells:,} cells")
        if self.strings.used + self.shared_text > bounds.shared_text_bytes:
            limit = bounds.shared_text_bytes // 2**20
            raise OutOfBounds(f"its cells' shared text comes to more than {limit:,} MB")

    def _beyond(self) -> str:
        bounds = self.bounds
        return f"a sheet has cells beyond column {bounds.columns} or row {bounds.rows:,}"
