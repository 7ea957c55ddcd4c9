"""The evaluator's trial allocation file: each LA's name, arm and randomisation date.

One reader for the file, used by the warehouse (`read_allocation`: every column, loaded into
`trial.allocation`) and by the LA partitions (`read_allocated_codes`: only the `la_code`
column, read cheaply when the Dagster definitions load). Both open, skip blank lines and
check the LA codes the same way. Errors name the line and the column, never a value.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pseudonymise.la_code import is_la_code
from schemas.codes import ARMS

ALLOCATION_HEADER = ("la_code", "la_name", "arm", "randomised_on")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

_Records = Iterator[tuple[int, list[str]]]  # (line number, fields) of each non-blank line


class AllocationError(ValueError):
    """The allocation file is not valid. Names the line and the column, never the value."""


@dataclass(frozen=True)
class AllocationRow:
    la_code: str
    la_name: str
    arm: str
    randomised_on: date


def read_allocation(path: Path) -> list[AllocationRow]:
    """The trial allocation CSV (`la_code,la_name,arm,randomised_on`), strictly checked."""
    with _opened(path) as (header, records):
        if tuple(header) != ALLOCATION_HEADER:
            raise AllocationError(
                "allocation file line 1: the header must be " + ",".join(ALLOCATION_HEADER)
            )
        rows = [_allocation_row(record, line) for line, record in records]
    if not rows:
        raise AllocationError("allocation file: it holds no LA")
    repeated = _first_repeat([row.la_code for row in rows])
    if repeated is not None:
        raise AllocationError(f"allocation file: LA number {repeated} repeats an la_code")
    return rows


def read_allocated_codes(path: Path) -> tuple[str, ...]:
    """The `la_code` column of an allocation CSV, checked to be distinct three-digit codes."""
    with _opened(path) as (header, records):
        if "la_code" not in header:
            raise AllocationError("line 1: the header has no la_code column")
        column = header.index("la_code")
        codes = [
            _la_code(record[column] if column < len(record) else "", line, "")
            for line, record in records
        ]
    if not codes:
        raise AllocationError("the allocation holds no LA")
    if _first_repeat(codes) is not None:
        raise AllocationError("an la_code is repeated")
    return tuple(sorted(codes))


@contextmanager
def _opened(path: Path) -> Iterator[tuple[list[str], _Records]]:
    """The file's header (names stripped) and its lines with any text in them."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        yield header, ((reader.line_num, record) for record in reader if any(record))


def _la_code(text: str, line: int, where: str) -> str:
    code = text.strip()
    if not is_la_code(code):
        raise AllocationError(f"{where}line {line}: la_code is not a three-digit code")
    return code


def _allocation_row(record: list[str], line: int) -> AllocationRow:
    where = f"allocation file line {line}"
    if len(record) != len(ALLOCATION_HEADER):
        raise AllocationError(
            f"{where}: expected {len(ALLOCATION_HEADER)} fields, found {len(record)}"
        )
    la_code = _la_code(record[0], line, "allocation file ")
    la_name, arm, randomised_on = (cell.strip() for cell in record[1:])
    if not la_name:
        raise AllocationError(f"{where}: la_name is blank")
    if arm not in ARMS:
        raise AllocationError(f"{where}: arm is not one of {', '.join(ARMS)}")
    randomised = _iso_date(randomised_on)
    if randomised is None:
        raise AllocationError(f"{where}: randomised_on is not a date in YYYY-MM-DD form")
    return AllocationRow(la_code=la_code, la_name=la_name, arm=arm, randomised_on=randomised)


def _iso_date(text: str) -> date | None:
    if not _ISO_DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _first_repeat(codes: list[str]) -> int | None:
    """The number (from 1) of the first LA whose code an earlier one has, if any."""
    seen: set[str] = set()
    for number, code in enumerate(codes, start=1):
        if code in seen:
            return number
        seen.add(code)
    return None
