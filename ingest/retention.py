"""Retention: landed raw files older than the retention period are deleted, and logged.

The period is `TRIAL_RETENTION_DAYS` (default 730 days). The trial window closes on 2025-12-31
and follow-up outcomes are collected for six months after, so two years keeps every raw file
reprocessable (after a key rotation or a schema fix) through the end of follow-up and the
analysis that follows, and no longer. Set it in writing with the trial's data protection lead.

Each deletion is recorded in `ops.retention_log` (LA code, submission id, received and deleted
times) after the file is gone, so the log never claims a deletion that did not happen. A failure
on one file is counted and logged by LA code and submission id, and the others carry on; the
next run retries it. Running twice deletes nothing more and logs nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ingest.settings import Settings
from ingest.storage.landing import LandedFile, Landing, open_configured_landing
from ingest.warehouse import Warehouse

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionFailure:
    la_code: str
    submission_id: str
    error: str  # the exception's class name: a message could name a path


@dataclass(frozen=True)
class RetentionResult:
    cutoff: datetime
    dry_run: bool
    deleted: tuple[LandedFile, ...] = ()  # would be deleted, in a dry run
    failed: tuple[RetentionFailure, ...] = field(default=())

    @property
    def counts(self) -> dict[str, int]:
        """What a run shows: counts only."""
        return {"deleted": len(self.deleted), "failed": len(self.failed)}


def retention_cutoff(now: datetime, days: int) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now - timedelta(days=days)


def apply_retention(
    landing: Landing,
    warehouse: Warehouse,
    *,
    now: datetime,
    retention_days: int,
    dry_run: bool = False,
) -> RetentionResult:
    """Delete every landed file received before `now - retention_days`, logging each one."""
    if retention_days < 1:
        raise ValueError("the retention period must be at least one day")
    cutoff = retention_cutoff(now, retention_days)
    expired = sorted(landing.older_than(cutoff), key=lambda f: (f.received_at, f.submission_id))
    if dry_run:
        return RetentionResult(cutoff=cutoff, dry_run=True, deleted=tuple(expired))
    warehouse.create_schema()
    deleted: list[LandedFile] = []
    failed: list[RetentionFailure] = []
    for landed in expired:
        failure = _delete_one(landing, warehouse, landed, now)
        if failure is None:
            deleted.append(landed)
        else:
            failed.append(failure)
    return RetentionResult(
        cutoff=cutoff, dry_run=False, deleted=tuple(deleted), failed=tuple(failed)
    )


def _delete_one(
    landing: Landing, warehouse: Warehouse, landed: LandedFile, now: datetime
) -> RetentionFailure | None:
    try:
        landing.delete(landed.la_code, landed.submission_id)
        warehouse.record_retention(
            la_code=landed.la_code,
            submission_id=landed.submission_id,
            received_at=landed.received_at,
            deleted_at=now,
        )
    except Exception as exc:  # one file's failure must not stop the others
        name = type(exc).__name__
        _log.warning(
            "retention: submission %s of LA %s not deleted (%s); the next run retries it",
            landed.submission_id,
            landed.la_code,
            name,
        )
        return RetentionFailure(landed.la_code, landed.submission_id, name)
    return None


def main_retention(settings: Settings, *, dry_run: bool = False) -> int:
    """`trial-ingest retention [--dry-run]`: counts only; exit 1 if a deletion failed."""
    from datetime import UTC

    days = settings.retention_days
    warehouse = Warehouse(settings.warehouse_url)
    try:
        result = apply_retention(
            open_configured_landing(settings),
            warehouse,
            now=datetime.now(UTC),
            retention_days=days,
            dry_run=dry_run,
        )
    finally:
        warehouse.dispose()
    cutoff = result.cutoff.isoformat(timespec="seconds")
    if dry_run:
        print(f"{len(result.deleted)} landed raw file(s) received before {cutoff} would be deleted")
        return 0
    print(
        f"Retention ({days} days, cutoff {cutoff}): {len(result.deleted)} raw file(s) deleted "
        f"and logged, {len(result.failed)} failed"
    )
    for failure in result.failed:
        print(f"  not deleted: LA {failure.la_code} submission {failure.submission_id}")
    return 1 if result.failed else 0
