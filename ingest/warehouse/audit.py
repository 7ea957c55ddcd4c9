"""The audit trail: the submissions table, issues with whole files, the retention log, and
each LA's current return per dataset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import polars as pl
import sqlalchemy as sa

from ingest.warehouse.layout import (
    STATUSES,
    Layout,
    Status,
    check_dataset,
    from_stored_time,
    service_date_columns,
    to_stored_time,
)
from ingest.warehouse.session import WarehouseParts
from pseudonymise.la_code import check_la_code
from schemas.outcome import FileIssue, file_issue_rows


@dataclass(frozen=True)
class SubmissionRecord:
    """One row of the audit table: one received file and one dataset in it (None: the file)."""

    receipt_id: str
    submission_id: str
    la_code: str
    dataset: str | None
    status: Status
    reason: str | None  # rule names, ';'-joined
    rows_received: int
    rows_loaded: int
    rows_rejected: int
    received_at: datetime
    processed_at: datetime
    content_hmac: str | None  # keyed; None: recorded before fingerprints were keyed
    size_bytes: int
    key_id: str


@dataclass(frozen=True)
class PreviousReturn:
    """The LA's current return for a dataset, for the "count fell by more than half" check."""

    submission_id: str
    received_at: datetime
    rows_loaded: int
    newest_record_date: date | None  # the latest service date in it (None: no service dates)


@dataclass(frozen=True)
class CurrentReturn:
    la_code: str
    dataset: str
    submission_id: str
    received_at: datetime


# --- issues ---------------------------------------------------------------------------------


def issue_table_rows(
    issues: pl.DataFrame, *, submission_id: str, la_code: str, dataset: str | None
) -> pl.DataFrame:
    """Issue rows (`ISSUE_SCHEMA`) as `ops.issues` holds them (dataset null: the whole file)."""
    return issues.select(
        pl.lit(submission_id, pl.String()).alias("submission_id"),
        pl.lit(la_code, pl.String()).alias("la_code"),
        pl.lit(dataset, pl.String()).alias("dataset"),
        pl.all(),
    )


# --- current returns ------------------------------------------------------------------------


def current_row(
    conn: sa.Connection, layout: Layout, la_code: str, dataset: str
) -> sa.Row[Any, Any] | None:
    """The LA's current return of `dataset` (submission_id, received_at as stored), if any."""
    table = layout.current_returns
    return conn.execute(
        sa.select(table.c.submission_id, table.c.received_at).where(
            table.c.la_code == la_code, table.c.dataset == dataset
        )
    ).first()


# --- the trail ------------------------------------------------------------------------------


class AuditTrail(WarehouseParts):
    """Reading and writing the audit tables, each operation in its own transaction."""

    def record_file_issues(
        self, *, la_code: str, submission_id: str, issues: Sequence[FileIssue]
    ) -> None:
        """Record issues with a whole file (dataset null), replacing the submission's earlier."""
        check_la_code(la_code)
        rows = issue_table_rows(
            file_issue_rows(issues), submission_id=submission_id, la_code=la_code, dataset=None
        )

        def replace(conn: sa.Connection) -> None:
            table = self._layout.issues
            conn.execute(
                sa.delete(table).where(
                    table.c.submission_id == submission_id,
                    table.c.la_code == la_code,
                    table.c.dataset.is_(None),
                )
            )
            self._inserter.insert(conn, table, rows)

        self._session.run(f"recording file issues for LA {la_code}", replace)

    def record_retention(
        self, *, la_code: str, submission_id: str, received_at: datetime, deleted_at: datetime
    ) -> None:
        """Log that a landed raw file was deleted (a second deletion keeps the first record)."""
        values = {
            "la_code": check_la_code(la_code),
            "submission_id": submission_id,
            "received_at": to_stored_time(received_at),
            "deleted_at": to_stored_time(deleted_at),
        }
        table = self._layout.retention_log

        def record(conn: sa.Connection) -> None:
            logged = conn.execute(
                sa.select(sa.literal(1)).where(
                    table.c.la_code == la_code, table.c.submission_id == submission_id
                )
            ).first()
            if logged is None:
                conn.execute(sa.insert(table), [values])

        self._session.run(f"recording a retention deletion for LA {la_code}", record)

    def retention_log(self) -> list[dict[str, Any]]:
        """Every logged deletion (la_code, submission_id, received_at, deleted_at), oldest first."""
        table = self._layout.retention_log
        query = sa.select(table).order_by(
            table.c.deleted_at, table.c.la_code, table.c.submission_id
        )
        rows = self._session.run(
            "reading the retention log", lambda conn: conn.execute(query).mappings().all()
        )
        return [
            {
                **row,
                "received_at": from_stored_time(row["received_at"]),
                "deleted_at": from_stored_time(row["deleted_at"]),
            }
            for row in rows
        ]

    def record_submission(
        self, rows: Sequence[SubmissionRecord], *, taken_file: str | None = None
    ) -> None:
        """Insert or replace audit rows by (receipt_id, dataset), in one transaction; with them,
        that the receipt came from the inbox file of fingerprint `taken_file`."""
        values = [_submission_values(row) for row in rows]
        if not values:
            return

        def record(conn: sa.Connection) -> None:
            self._upsert_submissions(conn, values)
            if taken_file is not None:
                self._record_taken(conn, rows[0], taken_file)

        self._session.run("recording submissions", record)

    def _record_taken(self, conn: sa.Connection, row: SubmissionRecord, fingerprint: str) -> None:
        table = self._layout.taken_files
        conn.execute(
            sa.delete(table).where(
                table.c.la_code == row.la_code, table.c.fingerprint == fingerprint
            )
        )
        conn.execute(
            sa.insert(table).values(
                la_code=row.la_code, fingerprint=fingerprint, receipt_id=row.receipt_id
            )
        )

    def taken_receipt(self, la_code: str, fingerprint: str) -> list[SubmissionRecord]:
        """The audit rows of the receipt taken from the inbox file of this fingerprint (none: its
        outcome is not recorded)."""
        taken, table = self._layout.taken_files, self._layout.submissions
        query = (
            sa.select(table)
            .join(taken, taken.c.receipt_id == table.c.receipt_id)
            .where(taken.c.la_code == check_la_code(la_code), taken.c.fingerprint == fingerprint)
        )
        rows = self._session.run(
            "looking for a taken file", lambda conn: conn.execute(query).mappings().all()
        )
        return [_submission_record(row) for row in rows]

    def has_outcome(self, la_code: str, submission_id: str) -> bool:
        """Has this landed submission an outcome (accepted, held or rejected) on record?"""
        table = self._layout.submissions
        query = (
            sa.select(sa.literal(1))
            .where(
                table.c.la_code == check_la_code(la_code),
                table.c.submission_id == submission_id,
                table.c.status.in_(("accepted", "held", "rejected")),
            )
            .limit(1)
        )
        found = self._session.run(
            "looking for an outcome", lambda conn: conn.execute(query).first()
        )
        return found is not None

    def _upsert_submissions(self, conn: sa.Connection, values: list[dict[str, Any]]) -> None:
        table = self._layout.submissions
        for value in values:
            conn.execute(
                sa.delete(table).where(
                    table.c.receipt_id == value["receipt_id"],
                    table.c.dataset.is_not_distinct_from(value["dataset"]),
                )
            )
        conn.execute(sa.insert(table), values)

    def submissions(self, la_code: str | None = None) -> list[SubmissionRecord]:
        """Audit rows (of one LA, or all), oldest received first."""
        table = self._layout.submissions
        query = sa.select(table).order_by(
            table.c.received_at, table.c.receipt_id, table.c.dataset.nulls_first()
        )
        if la_code is not None:
            query = query.where(table.c.la_code == check_la_code(la_code))
        rows = self._session.run(
            "reading submissions", lambda conn: conn.execute(query).mappings().all()
        )
        return [_submission_record(row) for row in rows]

    def is_duplicate(
        self, la_code: str, content_hmac: str, *, legacy_submission_id: str | None = None
    ) -> bool:
        """Was a byte-identical file from this LA already processed (accepted, held or
        rejected)? `content_hmac`: the file's, under the landing key; `legacy_submission_id`:
        the id the file would have had before ids were keyed, which rows recorded then (their
        `content_hmac` null) carry."""
        table = self._layout.submissions
        same = table.c.content_hmac == content_hmac
        if legacy_submission_id is not None:
            recorded_before = sa.and_(
                table.c.content_hmac.is_(None), table.c.submission_id == legacy_submission_id
            )
            same = sa.or_(same, recorded_before)
        query = (
            sa.select(sa.literal(1))
            .where(
                table.c.la_code == check_la_code(la_code),
                same,
                table.c.status.in_(("accepted", "held", "rejected")),
            )
            .limit(1)
        )
        found = self._session.run(
            "checking for a duplicate", lambda conn: conn.execute(query).first()
        )
        return found is not None

    def submissions_with_outcome(self) -> set[str]:
        """The ids of every submission with an outcome (accepted, held or rejected)."""
        table = self._layout.submissions
        query = (
            sa.select(table.c.submission_id)
            .distinct()
            .where(table.c.status.in_(("accepted", "held", "rejected")))
        )
        rows = self._session.run(
            "reading submissions with an outcome", lambda conn: conn.execute(query).all()
        )
        return {str(row[0]) for row in rows}

    def previous_accepted(self, la_code: str, dataset: str) -> PreviousReturn | None:
        """The LA's current return for the dataset: its rows and newest service date."""
        check_la_code(la_code)
        check_dataset(dataset)
        return self._session.run(
            "reading the previous return",
            lambda conn: self._previous_accepted(conn, la_code, dataset),
        )

    def _previous_accepted(
        self, conn: sa.Connection, la_code: str, dataset: str
    ) -> PreviousReturn | None:
        current = current_row(conn, self._layout, la_code, dataset)
        if current is None:
            return None
        history = self._layout.history[dataset]
        dates = [sa.func.max(history.c[c]) for c in service_date_columns(dataset)]
        row = conn.execute(
            sa.select(sa.func.count(), *dates).where(
                history.c.la_code == la_code, history.c.submission_id == current.submission_id
            )
        ).one()
        newest = max((d for d in row[1:] if d is not None), default=None)
        return PreviousReturn(
            submission_id=current.submission_id,
            received_at=from_stored_time(current.received_at),
            rows_loaded=int(row[0]),
            newest_record_date=newest,
        )

    def current_returns(self) -> list[CurrentReturn]:
        """The current return of every LA and dataset."""
        table = self._layout.current_returns
        query = sa.select(table).order_by(table.c.la_code, table.c.dataset)
        rows = self._session.run("reading current returns", lambda conn: conn.execute(query).all())
        return [
            CurrentReturn(
                la_code=r.la_code,
                dataset=r.dataset,
                submission_id=r.submission_id,
                received_at=from_stored_time(r.received_at),
            )
            for r in rows
        ]


def _submission_values(row: SubmissionRecord) -> dict[str, Any]:
    check_la_code(row.la_code)
    if row.dataset is not None:
        check_dataset(row.dataset)
    if row.status not in STATUSES:
        raise ValueError(f"a submission status must be one of {', '.join(STATUSES)}")
    values = vars(row).copy()
    values["received_at"] = to_stored_time(row.received_at)
    values["processed_at"] = to_stored_time(row.processed_at)
    return values


def _submission_record(row: sa.RowMapping) -> SubmissionRecord:
    values = dict(row)
    values["received_at"] = from_stored_time(values["received_at"])
    values["processed_at"] = from_stored_time(values["processed_at"])
    return SubmissionRecord(**values)
