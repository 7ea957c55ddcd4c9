"""LA partitions: one per LA in the evaluator's allocation file, never from the drop's contents.

Read when the definitions load, cheaply (only the `la_code` column, by `ingest.allocation`;
the warehouse checks the whole file when the allocation asset loads it). A missing or
unreadable allocation leaves the partitions empty and says why in `problem`, so the code
location still loads and the sensor's ticks fail with that message instead.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dagster import StaticPartitionsDefinition

from ingest.allocation import read_allocated_codes
from ingest.resources import ALLOCATION_FILE


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
        codes = read_allocated_codes(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return AllocatedLAs((), f"{ALLOCATION_FILE} cannot be read ({type(exc).__name__})")
    except ValueError as exc:
        return AllocatedLAs((), f"{ALLOCATION_FILE}: {exc}")
    return AllocatedLAs(codes)
