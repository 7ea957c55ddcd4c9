"""The cells of a piece of sheet XML written the usual way, read with array operations.

Excel, LibreOffice and the writing libraries write every cell as `<c r="B7" ...>`, its
reference first. Such a piece is read here without a Python step per cell, which keeps the
bounds check of `workbook_bounds` well within calamine's own reading time; a piece with any
other cell (no reference, another attribute first, a namespace prefix) or a declaration gives
None, and the whole part is then walked tag by tag.

calamine matches names exactly (`c`, `r`, `t`, `s`), so `<C R=...>` is no cell to it either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_PAD = b" " * 32  # so that reading a few bytes past any position stays inside the array
_MAX_LETTERS = 3  # XFD, the last column Excel has
_MAX_DIGITS = 8  # past 1,048,576, Excel's last row; more is counted as beyond any bound
BEYOND = 10**9
_AFTER_NAME = np.zeros(256, dtype=bool)  # the bytes that can end an element's name
_AFTER_NAME[list(b" \t\n\r>/")] = True

Bytes = npt.NDArray[np.uint8]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class UsualCells:
    count: int
    last_row: int  # 0-based, -1 when no cell
    last_column: int
    shared_text: int  # the most text the shared-string cells whose index was read can hold
    unknown_shared: int  # shared-string cells whose index was not read


def usual_cells(piece: bytes, lengths: Ints) -> UsualCells | None:
    """The piece's cells, or None when one is not usual. `lengths` bounds the text of each
    shared string, by index."""
    data = np.frombuffer(piece + _PAD, dtype=np.uint8)
    size = len(piece)
    tags = np.flatnonzero(data[:size] == ord("<"))
    if (data[tags + 1] == ord("!")).any():
        return None  # a comment, CDATA or a declaration: walked, and checked, tag by tag
    if _prefixed_cell(data, size):
        return None
    starts = tags[(data[tags + 1] == ord("c")) & _AFTER_NAME[data[tags + 2]]]
    refs = starts[_followed_by(data, starts + 2, b' r="')]
    if len(refs) != len(starts):
        return None
    placed = _positions(data, refs + len(b'<c r="'))
    if placed is None:
        return None
    row, column = placed
    shared_text, known = _shared(data, tags, lengths)
    return UsualCells(
        count=len(refs),
        last_row=row - 1,
        last_column=column - 1,
        shared_text=shared_text,
        unknown_shared=piece.count(b't="s"') - known,
    )


def _followed_by(data: Bytes, at: Ints, text: bytes) -> npt.NDArray[np.bool_]:
    hits = np.ones(len(at), dtype=bool)
    for offset, byte in enumerate(text):
        hits &= data[at + offset] == byte
    return hits


def _prefixed_cell(data: Bytes, size: int) -> bool:
    """Is there an `x:c` (a cell with a namespace prefix)?"""
    colons = np.flatnonzero(data[:size] == ord(":"))
    return bool(((data[colons + 1] == ord("c")) & _AFTER_NAME[data[colons + 2]]).any())


def _positions(data: Bytes, at: Ints) -> tuple[int, int] | None:
    """The largest 1-based row and column among the references starting at `at`; None when
    one is not letters then digits then a quote."""
    letters = _run(data, at, _LETTER, _MAX_LETTERS + 1)
    digits_at = at + letters
    digits = _run(data, digits_at, _DIGIT, _MAX_DIGITS + 1)
    usual = (letters > 0) & (digits > 0) & (data[digits_at] != ord("0"))
    usual &= (digits > _MAX_DIGITS) | (letters > _MAX_LETTERS) | (data[digits_at + digits] == 34)
    if not usual.all():
        return None
    if not len(at):
        return 0, 0
    if letters.max() > _MAX_LETTERS or digits.max() > _MAX_DIGITS:
        return BEYOND, BEYOND
    column = _largest(data, at, letters, mask=0xDF)
    row = _largest(data, digits_at, digits)
    return int(row), column_number(column)


_LETTER = np.zeros(256, dtype=bool)
_LETTER[list(range(ord("A"), ord("Z") + 1)) + list(range(ord("a"), ord("z") + 1))] = True
_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[list(range(ord("0"), ord("9") + 1))] = True


def _run(data: Bytes, at: Ints, kind: npt.NDArray[np.bool_], most: int) -> Ints:
    """How many bytes of `kind` follow each position of `at` (at most `most`)."""
    going = np.ones(len(at), dtype=bool)
    count = np.zeros(len(at), dtype=np.int64)
    for i in range(most):
        going &= kind[data[at + i]]
        count += going
    return count


def _largest(data: Bytes, at: Ints, lengths: Ints, *, mask: int = 0xFF) -> bytes:
    """The largest of the runs of letters or digits at `at` (at most 8 bytes long): a longer
    run is larger, runs of one length compare byte by byte, each byte `& mask` (0xDF: letters
    in upper case)."""
    longest = int(lengths.max())
    chosen = at[lengths == longest]
    key = np.zeros(len(chosen), dtype=np.uint64)
    for i in range(longest):
        key = key * 256 + (data[chosen + i] & mask)
    first = int(chosen[int(np.argmax(key))])
    return bytes(data[first : first + longest])


def column_number(letters: bytes) -> int:
    """1-based: A (or a) is 1, XFD is 16384."""
    number = 0
    for letter in letters.upper():
        number = number * 26 + letter - ord("A") + 1
    return number


def _numbers(data: Bytes, at: Ints, digits: Ints) -> Ints:
    number = np.zeros(len(at), dtype=np.int64)
    for i in range(int(digits.max()) if len(digits) else 0):
        more = i < digits
        number = np.where(more, number * 10 + data[at + i].astype(np.int64) - ord("0"), number)
    return number


def _shared(data: Bytes, tags: Ints, lengths: Ints) -> tuple[int, int]:
    """The most text the shared-string cells written `t="s"><v>N</v>` (type last, as usual)
    can hold, and how many such cells there are."""
    values = tags[(data[tags + 1] == ord("v")) & (data[tags + 2] == ord(">"))]
    values = values[values >= 6]
    values = values[_followed_by(data, values - 6, b't="s">')]
    digits = _run(data, values + 3, _DIGIT, 12)
    read = (digits > 0) & (digits <= 11) & (data[values + 3 + digits] == ord("<"))
    index = _numbers(data, values[read] + 3, digits[read])
    known = index < len(lengths)
    return int(lengths[index[known]].sum()), int(read.sum())
