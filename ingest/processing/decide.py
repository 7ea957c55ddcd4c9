"""Whether a return replaces the LA's current one: the blocking checks and their verdicts.

The warehouse asks a `ReplaceDecision` (its `ReplacePolicy`) once a table's last chunk is in,
with the totals it added up, the newest service date among them
(`ingest.warehouse.newest_service_date`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from ingest.warehouse import ChunkTotals, PreviousReturn


class Check(StrEnum):
    """The blocking checks a return passes before it replaces the LA's earlier rows."""

    HAS_VALID_ROWS = "has_valid_rows"
    ROW_COUNT_NOT_HALVED = "row_count_not_halved"
    NOT_OLDER_THAN_PREVIOUS = "not_older_than_previous"


CHECK_DESCRIPTIONS = {
    Check.HAS_VALID_ROWS: "The return has at least one valid row.",
    Check.ROW_COUNT_NOT_HALVED: (
        "The return's valid rows are at least half of the LA's current return's rows."
    ),
    Check.NOT_OLDER_THAN_PREVIOUS: (
        "The return's newest service date is not older than the current return's."
    ),
}


@dataclass(frozen=True)
class CheckVerdict:
    check: Check
    passed: bool
    description: str  # counts of the return and its predecessor only
    metadata: dict[str, int | str] = field(default_factory=dict)


@dataclass
class ReplaceDecision:
    """Whether a return replaces the LA's current rows, from its totals (a `ReplacePolicy`):
    asked by the loader once a table's last chunk is in, or by processing afterwards for an
    accepted return with no valid rows (the loader does not ask about those)."""

    previous: PreviousReturn | None
    received_at: datetime
    release_held: bool
    verdicts: tuple[CheckVerdict, ...] = ()
    replace: bool = True
    decided: bool = False

    def decide(self, totals: ChunkTotals) -> bool:
        self.decided = True
        # A return received before the current one only goes into history: nothing to check.
        if self.previous is None or self.previous.received_at <= self.received_at:
            self.verdicts = blocking_checks(
                totals.rows_clean, totals.newest_service_date, self.previous
            )
            self.replace = self.release_held or self.all_passed
        return self.replace

    @property
    def all_passed(self) -> bool:
        return all(v.passed for v in self.verdicts)


def blocking_checks(
    valid_rows: int, newest: date | None, previous: PreviousReturn | None
) -> tuple[CheckVerdict, ...]:
    """The blocking checks of a return with `valid_rows` rows and this newest service date."""
    return (
        _has_valid_rows(valid_rows),
        _row_count_not_halved(valid_rows, previous),
        _not_older_than_previous(newest, previous),
    )


def _has_valid_rows(rows: int) -> CheckVerdict:
    return CheckVerdict(Check.HAS_VALID_ROWS, rows > 0, f"{rows} valid rows", {"valid_rows": rows})


def _row_count_not_halved(rows: int, previous: PreviousReturn | None) -> CheckVerdict:
    if previous is None:
        return CheckVerdict(Check.ROW_COUNT_NOT_HALVED, True, "no earlier return to compare with")
    passed = 2 * rows >= previous.rows_loaded
    return CheckVerdict(
        Check.ROW_COUNT_NOT_HALVED,
        passed,
        f"{rows} valid rows; the current return has {previous.rows_loaded}",
        {"valid_rows": rows, "previous_rows": previous.rows_loaded},
    )


def _not_older_than_previous(newest: date | None, previous: PreviousReturn | None) -> CheckVerdict:
    earlier = previous.newest_record_date if previous else None
    if newest is None or earlier is None:
        return CheckVerdict(Check.NOT_OLDER_THAN_PREVIOUS, True, "no service dates to compare")
    # The dates themselves are values from the file: the event log gets the comparison only.
    passed = newest >= earlier
    return CheckVerdict(
        Check.NOT_OLDER_THAN_PREVIOUS,
        passed,
        "newest service date is not older than the current return's"
        if passed
        else "newest service date is older than the current return's",
        {"older_than_current": not passed},
    )
