"""LA partitions: one per LA in the evaluator's allocation file, never from the drop's contents.

Read when the definitions load, cheaply (only the `la_code` column, by `ingest.allocation`;
the warehouse checks the whole file when the allocation asset loads it). A missing or
unreadable allocation leaves the partitions empty and says why in `problem`, so the code
location still loads and the sensor's ticks fail with that message instead.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

from dagster import StaticPartitionsDefinition

from ingest.allocation import read_allocated_codes
from ingest.settings import ALLOCATION_FILE, Settings


@dataclass(frozen=True)
class AllocatedLAs:
    """The LA codes of the trial allocation, or why there are none."""

    la_codes: tuple[str, ...]
    problem: str | None = None

    @property
    def partitions(self) -> StaticPartitionsDefinition:
        return StaticPartitionsDefinition(list(self.la_codes))


def allocated_las(settings: Settings) -> AllocatedLAs:
    """The LAs named in TRIAL_ALLOCATION_FILE."""
    path = settings.allocation_file
    if path is None:
        return AllocatedLAs((), f"{ALLOCATION_FILE} is not set: no LA inbox is watched")
    try:
        codes = read_allocated_codes(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return AllocatedLAs((), f"{ALLOCATION_FILE} cannot be read ({type(exc).__name__})")
    except ValueError as exc:
        return AllocatedLAs((), f"{ALLOCATION_FILE}: {exc}")
    return AllocatedLAs(codes)
