"""What became of each file a run took, and the lines a person following the runs reads.

No file name is ever printed (an LA chose it): the LA, each dataset's rows loaded and
rejected, the reasons (rule and check names), a failed run's id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.warehouse import SubmissionRecord


@dataclass(frozen=True)
class FileOutcome:
    """One requested run: the file by fingerprint, how the run ended, what the audit says."""

    la_code: str
    fingerprint: str
    run_id: str
    succeeded: bool
    submission_id: str | None
    audit: tuple[SubmissionRecord, ...] = ()

    @property
    def status(self) -> str:
        """accepted, held, rejected or duplicate (from the audit table); failed; or gone (the
        file left the inbox before its run took it).

        A held return fails its run (its blocking checks fail) but ended in a known state.
        """
        if any(r.status == "held" for r in self.audit):
            return "held"
        if not self.succeeded:
            return "failed"
        if self.submission_id is None:
            return "gone"
        if not self.audit:
            return "failed"
        statuses = {r.status for r in self.audit}
        for status in ("duplicate", "accepted", "rejected"):
            if status in statuses:
                return status
        return "failed"


@dataclass(frozen=True)
class RunSummary:
    files: list[FileOutcome] = field(default_factory=list)
    note: str = ""  # the sensor's summary of the drop (counts only)

    @property
    def failed(self) -> bool:
        """Did a run fail without its file ending accepted, held, rejected or duplicate?"""
        return any(f.status == "failed" for f in self.files)

    @property
    def held(self) -> bool:
        return any(f.status == "held" for f in self.files)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def file_line(outcome: FileOutcome) -> str:
    """One file, as a person following the run needs it: the LA, what became of each dataset
    in it, and rows loaded and rejected. No file name (an LA chose it); a failed run's id."""
    parts = [_dataset_part(r) for r in outcome.audit if r.dataset is not None]
    whole_file = [r.reason for r in outcome.audit if r.dataset is None and r.reason]
    if outcome.status == "failed":
        parts.append(f"run {outcome.run_id} failed: see it in the Dagster UI")
    elif outcome.status == "gone":
        parts.append("the file left the inbox before its run took it")
    elif whole_file:
        parts.append(f"whole file: {', '.join(whole_file)}")
    return f"  LA {outcome.la_code}  {outcome.status.upper():<9}  " + "; ".join(parts)


def _dataset_part(record: SubmissionRecord) -> str:
    if record.status == "duplicate":
        return f"{record.dataset}"
    if record.status == "held":
        return f"{record.dataset} held by {record.reason}, {record.rows_rejected} rejected"
    if record.status == "rejected":
        return f"{record.dataset} rejected ({record.reason or 'no valid rows'})"
    return f"{record.dataset} {record.rows_loaded} loaded, {record.rows_rejected} rejected"


def print_file_line(outcome: FileOutcome) -> None:
    print(file_line(outcome), flush=True)


def print_run_summary(summary: RunSummary) -> None:
    print_totals(summary)
    if summary.held:
        print(
            "Held returns are kept but replace nothing until released: check them in the "
            "Dagster UI, then `trial-ingest release SUBMISSION_ID`."
        )
    if summary.failed:
        print("Some runs failed: open the Dagster UI (trial-ingest ui) to see why.")


def print_totals(summary: RunSummary) -> None:
    counts: dict[str, int] = {}
    for outcome in summary.files:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    totals = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"
    print(f"Files processed: {len(summary.files)} ({totals})")
    if summary.note:
        print(f"Drop: {summary.note}")
