"""LA partitions: one per LA in the evaluator's allocation file, never from the drop's contents.

Read when the definitions load, cheaply (only the `la_code` column; the warehouse checks the
whole file when the allocation asset loads it). A missing or unreadable allocation leaves the
partitions empty and says why in `problem`, so the code location still loads and the sensor's
ticks fail with that message instead.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dagster import StaticPartitionsDefinition

from ingest.resources import ALLOCATION_FILE

_LA_CODE = re.compile(r"[0-9]{3}")


@dataclass(frozen=True)
class AllocatedLAs:
    """The LA codes of the trial allocation, or why there are none."""

    la_codes: tuple[str, ...]
    problem: str | None = None

    @property
    def partitions(self) -> StaticPartitionsDefinition:
        return StaticPartitionsDefinition(list(self.la_codes))


def allocated_las(env: Mapping[str, str]) -> AllocatedLAs:
    """The LAs named in TRIAL_ALLOCATION_FILE."""
    path_text = env.get(ALLOCATION_FILE, "").strip()
    if not path_text:
        return AllocatedLAs((), f"{ALLOCATION_FILE} is not set: no LA inbox is watched")
    path = Path(path_text).expanduser()
    try:
        codes = read_la_codes(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return AllocatedLAs((), f"{ALLOCATION_FILE} cannot be read ({type(exc).__name__})")
    except ValueError as exc:
        return AllocatedLAs((), f"{ALLOCATION_FILE}: {exc}")
    return AllocatedLAs(codes)


def read_la_codes(path: Path) -> tuple[str, ...]:
    """The `la_code` column of an allocation CSV, checked to be distinct three-digit codes."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        if "la_code" not in header:
            raise ValueError("line 1: the header has no la_code column")
        column = header.index("la_code")
        codes = [_la_code(row, column, reader.line_num) for row in reader if any(row)]
    if not codes:
        raise ValueError("the allocation holds no LA")
    if len(set(codes)) != len(codes):
        raise ValueError("an la_code is repeated")
    return tuple(sorted(codes))


def _la_code(row: list[str], column: int, line: int) -> str:
    code = row[column].strip() if column < len(row) else ""
    if not _LA_CODE.fullmatch(code):
        raise ValueError(f"line {line}: la_code is not a three-digit code")
    return code
