"""The report an LA gets in its drop folder for every file it sent."""

from __future__ import annotations

from ingest.processing.decide import CHECK_DESCRIPTIONS
from ingest.processing.results import DatasetStatus, SubmissionResult, SubmissionStatus
from ingest.processing.services import Services
from ingest.warehouse import SubmissionRecord, cross_check_findings
from schemas.cross_dataset_rules import CrossCheckFinding
from schemas.outcome import SubmissionOutcome
from schemas.report import render_report, report_file_name


def rewrite_duplicate_report(services: Services, audit: SubmissionRecord) -> None:
    """A duplicate's report again, from its audit row (written before its report, as a
    duplicate's received time is only on record there); the same name and text."""
    result = SubmissionResult(
        la_code=audit.la_code,
        submission_id=audit.submission_id,
        receipt_id=audit.receipt_id,
        received_at=audit.received_at,
        content_hmac=audit.content_hmac or "",
        size_bytes=audit.size_bytes,
        key_id=audit.key_id,
        status=SubmissionStatus.DUPLICATE,
        file_rules=(),
        datasets=(),
        report_name=report_file_name(audit.received_at, audit.submission_id),
    )
    outcome = SubmissionOutcome(la_code=audit.la_code, key_id=audit.key_id, tables=[])
    write_report(services, result, outcome)


def write_report(services: Services, result: SubmissionResult, outcome: SubmissionOutcome) -> None:
    """The report, written next to the LA's inbox (nowhere when there is no drop)."""
    if services.drop is None:
        return
    text = render_report(
        outcome,
        received_at=result.received_at,
        sha256=None,  # the service writes no bare hash of a file
        size_bytes=result.size_bytes,
        status=result.status.value,
        held_checks=held_check_lines(result),
        cross_findings=_cross_findings(services, result),
    )
    services.drop.write_report(result.la_code, result.report_name, text.encode("utf-8"))


def _cross_findings(services: Services, result: SubmissionResult) -> list[CrossCheckFinding]:
    """The LA's cross-dataset warnings after this file (none to report for a duplicate)."""
    if result.status is SubmissionStatus.DUPLICATE:
        return []
    return cross_check_findings(services.warehouse, result.la_code)


def held_check_lines(result: SubmissionResult) -> dict[str, list[str]]:
    """Per dataset held back, its failed blocking checks in words, for the LA's report."""
    return {
        dataset.dataset: [f"{c.value}: {CHECK_DESCRIPTIONS[c]}" for c in dataset.failed_checks]
        for dataset in result.datasets
        if dataset.status is DatasetStatus.HELD
    }
