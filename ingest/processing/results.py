"""What processing a file came to: per dataset and for the file, safe to show and audit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ingest.processing.decide import Check, CheckVerdict


class DatasetStatus(StrEnum):
    ACCEPTED = "accepted"  # now the LA's current return for the dataset
    SUPERSEDED = "superseded"  # accepted into history; a later-received return stays current
    HELD = "held"  # accepted into history; a blocking check kept the earlier rows current
    REJECTED = "rejected"  # nothing loaded but quarantine and issues


@dataclass(frozen=True)
class DatasetResult:
    """One dataset of a submission: what happened to it and what the UI shows."""

    dataset: str
    status: DatasetStatus
    rows_received: int
    rows_loaded: int
    rows_rejected: int
    rejected_by_rule: dict[str, int]
    rejection_rules: tuple[str, ...]  # file-level rules that rejected the whole dataset
    checks: tuple[CheckVerdict, ...]
    released: bool  # loaded although a blocking check failed, by a data engineer's decision
    columns: dict[str, str]  # stored column name -> type, for the column schema

    @property
    def failed_checks(self) -> tuple[Check, ...]:
        return tuple(v.check for v in self.checks if not v.passed)


class SubmissionStatus(StrEnum):
    ACCEPTED = "accepted"
    HELD = "held"  # readable, but a blocking check held back at least one of its datasets
    REJECTED = "rejected"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class SubmissionResult:
    la_code: str
    submission_id: str
    receipt_id: str
    received_at: datetime
    content_hmac: str
    size_bytes: int
    key_id: str
    status: SubmissionStatus
    file_rules: tuple[str, ...]  # file-level error rules (why the whole file was rejected)
    datasets: tuple[DatasetResult, ...]
    report_name: str
