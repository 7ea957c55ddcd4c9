"""The audit trail of a processed file: its rows in `ops.submissions`."""

from __future__ import annotations

from ingest.processing.results import (
    DatasetResult,
    DatasetStatus,
    SubmissionResult,
    SubmissionStatus,
)
from ingest.processing.services import Services
from ingest.warehouse import Status, SubmissionRecord


def audit_rows(services: Services, result: SubmissionResult) -> list[SubmissionRecord]:
    """One row per dataset in the file, or one for the whole file when it has none."""
    processed_at = services.clock()

    def row(dataset: DatasetResult | None) -> SubmissionRecord:
        return SubmissionRecord(
            receipt_id=result.receipt_id,
            submission_id=result.submission_id,
            la_code=result.la_code,
            dataset=dataset.dataset if dataset else None,
            status=_audit_status(result, dataset),
            reason=_audit_reason(result, dataset),
            rows_received=dataset.rows_received if dataset else 0,
            rows_loaded=dataset.rows_loaded if dataset else 0,
            rows_rejected=dataset.rows_rejected if dataset else 0,
            received_at=result.received_at,
            processed_at=processed_at,
            content_hmac=result.content_hmac,
            size_bytes=result.size_bytes,
            key_id=result.key_id,
        )

    return [row(d) for d in result.datasets] if result.datasets else [row(None)]


def _audit_status(result: SubmissionResult, dataset: DatasetResult | None) -> Status:
    if result.status is SubmissionStatus.DUPLICATE:
        return "duplicate"
    if dataset is None or dataset.status is DatasetStatus.REJECTED:
        return "rejected"
    if dataset.status is DatasetStatus.HELD:
        return "held"
    return "accepted"


def _audit_reason(result: SubmissionResult, dataset: DatasetResult | None) -> str | None:
    """Rule names that rejected it, or the blocking checks that held it back."""
    if dataset is None:
        return ";".join(result.file_rules) or None
    if dataset.status is DatasetStatus.REJECTED:
        return ";".join(dataset.rejection_rules) or None
    if dataset.status is DatasetStatus.HELD:
        return ";".join(dataset.failed_checks)
    if dataset.status is DatasetStatus.SUPERSEDED:
        return "superseded"
    return None
