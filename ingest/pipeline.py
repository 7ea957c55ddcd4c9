"""What happens to one file an LA dropped, with no Dagster in sight.

    take_from_drop      read the listed file, land it encrypted, empty it from the inbox
    take_from_landing   or read a landed file again (re-runs, key rotation, releasing a hold)
    process_received    duplicate? -> check (pseudonymise, validate) -> blocking checks ->
                        load the warehouse -> audit -> report to the LA

The Dagster asset (`ingest.assets.returns`) is a thin wrapper that turns a `SubmissionResult`
into materialisations and check results. Everything returned here is safe to show: counts,
rule and column names, tokens, hashes and times, never a value from the file and never the
LA's file name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

import polars as pl

from schemas.cross_dataset_rules import CrossCheckFinding
from schemas.outcome import ROW_NUMBER, CountedTable, FileIssue, SubmissionOutcome, TableOutcome
from schemas.report import render_report, report_file_name
from schemas.rules import Severity

if TYPE_CHECKING:
    from ingest.storage.drop import Drop, DropObject
    from ingest.storage.landing import Landing
    from ingest.warehouse import (
        ChunkTotals,
        LoadResult,
        PreviousReturn,
        Status,
        SubmissionRecord,
        Warehouse,
    )
    from pseudonymise.tokens import Tokeniser
    from schemas.chunked import TableChunk, TableEnd


class PipelineError(RuntimeError):
    """A file could not be processed. Names LA codes, fingerprints and ids, never file names."""


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


class DatasetStatus(StrEnum):
    ACCEPTED = "accepted"  # now the LA's current return for the dataset
    SUPERSEDED = "superseded"  # accepted into history; a later-received return stays current
    HELD = "held"  # accepted into history; a blocking check kept the earlier rows current
    REJECTED = "rejected"  # nothing loaded but quarantine and issues


@dataclass(frozen=True)
class Services:
    """What processing needs. `drop` may be None when reprocessing from the landing store."""

    landing: Landing
    warehouse: Warehouse
    tokeniser: Tokeniser
    drop: Drop | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Files of `chunked_from_bytes` or more are checked and loaded `chunk_rows` rows at a time
    # (None: the defaults of `schemas.chunked`).
    chunked_from_bytes: int | None = None
    chunk_rows: int | None = None


@dataclass(frozen=True)
class Received:
    """One received file, in memory only, identified without its name."""

    la_code: str
    content: bytes = field(repr=False)
    received_at: datetime
    submission_id: str
    sha256: str

    @property
    def size_bytes(self) -> int:
        return len(self.content)

    @property
    def receipt_id(self) -> str:
        """One receipt per (content, received time): a re-run of the same receipt replaces its
        audit rows, while the same bytes dropped again later are a new receipt (a duplicate)."""
        message = f"{self.submission_id}|{self.received_at.isoformat()}".encode()
        return hashlib.sha256(message).hexdigest()[:32]


@dataclass(frozen=True)
class CheckVerdict:
    check: Check
    passed: bool
    description: str  # counts and dates of the return and its predecessor only
    metadata: dict[str, int | str] = field(default_factory=dict)


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
    sha256: str
    size_bytes: int
    key_id: str
    status: SubmissionStatus
    file_rules: tuple[str, ...]  # file-level error rules (why the whole file was rejected)
    datasets: tuple[DatasetResult, ...]
    report_name: str


# --- receiving ------------------------------------------------------------------------------


def find_in_inbox(drop: Drop, la_code: str, fingerprint: str) -> DropObject | None:
    """The inbox file with this fingerprint, if it is still there."""
    return next((o for o in drop.list_inbox(la_code) if o.fingerprint == fingerprint), None)


def take_from_drop(services: Services, la_code: str, fingerprint: str) -> Received | None:
    """Read the file, land it encrypted (unless it is a duplicate), then empty it from the inbox.

    Landing comes before removal, so a failure in between leaves the file where it was. None
    when the listed file is no longer there as listed: re-uploaded under its name (the new
    upload has a run of its own) or already taken by another run.
    """
    from ingest.storage.drop import DropObjectChanged
    from ingest.storage.landing import submission_id_for

    drop = services.drop
    if drop is None:
        raise PipelineError("no drop is configured")
    services.warehouse.create_schema()
    obj = find_in_inbox(drop, la_code, fingerprint)
    if obj is None:
        return None
    try:
        content = drop.read(obj)
    except DropObjectChanged:
        return None
    sha256 = hashlib.sha256(content).hexdigest()
    submission_id = submission_id_for(la_code, content)
    received_at = services.clock()
    if not services.warehouse.is_duplicate(la_code, sha256):
        # Landed before (a run that failed part way)? Then it keeps its first received time.
        landed = services.landing.put(submission_id, la_code, content, received_at)
        received_at = landed.received_at
    drop.remove(obj)
    return Received(la_code, content, received_at, submission_id, sha256)


def take_from_landing(services: Services, la_code: str, submission_id: str) -> Received:
    """A landed file, as it was first received."""
    services.warehouse.create_schema()
    landed = services.landing.info(la_code, submission_id)
    content = services.landing.get(la_code, submission_id)
    return Received(la_code, content, landed.received_at, submission_id, landed.sha256)


# --- processing -----------------------------------------------------------------------------


def process_received(
    services: Services,
    received: Received,
    *,
    detect_duplicate: bool = True,
    release_held: bool = False,
) -> SubmissionResult:
    """Check, load, audit and report one file from `take_from_drop` or `take_from_landing`.

    `detect_duplicate` is off when a landed file is processed again on purpose; `release_held`
    loads datasets even where a blocking check fails (a person looked and decided).
    """
    if detect_duplicate and services.warehouse.is_duplicate(received.la_code, received.sha256):
        return _record_duplicate(services, received)
    outcome, datasets = _check_and_load(services, received, release_held=release_held)
    file_rules = _error_rules(outcome.file_issues)
    status = _submission_status(outcome, datasets)
    result = _result(services, received, status, file_rules, datasets)
    services.warehouse.record_file_issues(
        la_code=received.la_code,
        submission_id=received.submission_id,
        issues=outcome.file_issues,
    )
    services.warehouse.record_submission(_audit_rows(services, result))
    _write_report(services, result, outcome)
    return result


def _submission_status(
    outcome: SubmissionOutcome, datasets: tuple[DatasetResult, ...]
) -> SubmissionStatus:
    if not outcome.accepted:
        return SubmissionStatus.REJECTED
    if any(d.status is DatasetStatus.HELD for d in datasets):
        return SubmissionStatus.HELD
    return SubmissionStatus.ACCEPTED


def _check_and_load(
    services: Services, received: Received, *, release_held: bool
) -> tuple[SubmissionOutcome, tuple[DatasetResult, ...]]:
    """A large file is checked and loaded a chunk at a time, so memory holds a chunk, not the
    file's rows; one the chunked reader cannot cut (a ragged CSV) is checked whole."""
    from schemas.chunked import DEFAULT_MIN_BYTES
    from schemas.reader import WholeFileNeeded

    chunked_from = services.chunked_from_bytes
    if received.size_bytes >= (DEFAULT_MIN_BYTES if chunked_from is None else chunked_from):
        try:
            return _check_and_load_chunks(services, received, release_held=release_held)
        except WholeFileNeeded:
            pass  # nothing was loaded: the chunked load rolls back
    outcome = _check(services, received)
    datasets = tuple(
        _load_dataset(services, received, outcome, table, release_held=release_held)
        for table in outcome.tables
    )
    return outcome, datasets


def _check(services: Services, received: Received) -> SubmissionOutcome:
    from schemas.submission import check_submission

    return check_submission(
        received.content,
        la_code=received.la_code,
        tokeniser=services.tokeniser,
        today=received.received_at.astimezone(UTC).date(),
    )


def _load_dataset(
    services: Services,
    received: Received,
    outcome: SubmissionOutcome,
    table: TableOutcome,
    *,
    release_held: bool,
) -> DatasetResult:
    from ingest.warehouse import ChunkTotals

    # A file-level error (a wrong LA code, say) rejects every dataset in the file.
    accepted = outcome.accepted and table.accepted
    previous = services.warehouse.previous_accepted(received.la_code, table.dataset)
    decision = _ReplaceDecision(previous, received.received_at, release_held)
    if accepted:
        newest = newest_service_date(table)
        decision.decide(
            ChunkTotals(table.rows_received, table.clean.height, table.rows_rejected, newest)
        )
    load = services.warehouse.load_return(
        la_code=received.la_code,
        dataset=table.dataset,
        submission_id=received.submission_id,
        key_id=services.tokeniser.key_id,
        received_at=received.received_at,
        table=table if accepted else _as_rejected(table),
        replace=accepted and decision.replace,
    )
    return _dataset_result(
        table, load, accepted, decision, outcome.file_issues, dict(table.clean.schema)
    )


def _dataset_result(
    table: TableOutcome,
    load: LoadResult,
    accepted: bool,
    decision: _ReplaceDecision,
    file_issues: list[FileIssue],
    columns: dict[str, pl.DataType],
) -> DatasetResult:
    replace = accepted and decision.replace
    return DatasetResult(
        dataset=table.dataset,
        status=_dataset_status(accepted, replace, load),
        rows_received=table.rows_received,
        rows_loaded=load.rows_loaded,
        rows_rejected=table.rows_rejected,
        rejected_by_rule=rejected_by_rule(table),
        rejection_rules=_error_rules([*file_issues, *table.file_issues]),
        checks=decision.verdicts,
        released=decision.release_held and accepted and not decision.all_passed,
        columns={c: str(t) for c, t in columns.items() if c != ROW_NUMBER},
    )


def _check_and_load_chunks(
    services: Services, received: Received, *, release_held: bool
) -> tuple[SubmissionOutcome, tuple[DatasetResult, ...]]:
    from schemas.chunked import DEFAULT_CHUNK_ROWS, check_submission_chunks, tables_of

    submission = check_submission_chunks(
        received.content,
        la_code=received.la_code,
        tokeniser=services.tokeniser,
        today=received.received_at.astimezone(UTC).date(),
        chunk_rows=services.chunk_rows or DEFAULT_CHUNK_ROWS,
        min_bytes=services.chunked_from_bytes or 0,
    )
    tables: list[TableOutcome] = []
    datasets: list[DatasetResult] = []
    try:
        for chunks in tables_of(submission):
            table, dataset = _load_table_chunks(
                services, received, submission.file_issues, chunks, release_held=release_held
            )
            tables.append(table)
            datasets.append(dataset)
    finally:
        submission.close()
    outcome = SubmissionOutcome(
        la_code=received.la_code,
        key_id=services.tokeniser.key_id,
        tables=tables,
        file_issues=list(submission.file_issues),
    )
    return outcome, tuple(datasets)


def _load_table_chunks(
    services: Services,
    received: Received,
    file_issues: list[FileIssue],
    chunks: Iterator[TableChunk],
    *,
    release_held: bool,
) -> tuple[CountedTable, DatasetResult]:
    """`_load_dataset` for one table's chunks: the same checks, statuses and audit."""
    first = next(chunks)  # the file-level issues are known once a table's first chunk is made
    tally = _TableTally(file_ok=not _error_rules(file_issues))
    previous = services.warehouse.previous_accepted(received.la_code, first.dataset)
    decision = _ReplaceDecision(previous, received.received_at, release_held)
    load = services.warehouse.load_return_chunks(
        la_code=received.la_code,
        dataset=first.dataset,
        submission_id=received.submission_id,
        key_id=services.tokeniser.key_id,
        received_at=received.received_at,
        chunks=tally.counted(itertools.chain([first], chunks)),
        replace=decision,
    )
    from ingest.warehouse import ChunkTotals

    table = tally.table()
    accepted = tally.file_ok and table.accepted
    if accepted and not decision.decided:  # no valid rows: the loader did not ask
        decision.decide(
            ChunkTotals(table.rows_received, table.clean_rows, table.rejected_rows, None)
        )
    return table, _dataset_result(table, load, accepted, decision, file_issues, tally.columns)


@dataclass
class _ReplaceDecision:
    """Whether a return replaces the LA's current rows, from its totals (a `ReplacePolicy`):
    asked by the chunked loader once a table's last chunk is in, or by `_load_dataset` before
    loading."""

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


@dataclass
class _TableTally:
    """What the pipeline keeps of a table loaded chunk by chunk: its issues and counts.

    When the file as a whole is rejected, the chunks are passed on without their clean rows,
    as `_as_rejected` does for a whole table.
    """

    file_ok: bool
    chunks: list[TableChunk] = field(default_factory=list)  # rows dropped: issues and schema
    end: TableEnd | None = None
    newest_service_date: date | None = None

    def counted(self, chunks: Iterable[TableChunk]) -> Iterator[TableChunk]:
        for chunk in chunks:
            self.chunks.append(
                dataclasses.replace(
                    chunk, clean=chunk.clean.clear(), rejected=chunk.rejected.clear()
                )
            )
            self.end = chunk.end or self.end
            yield chunk if self.file_ok else _without_clean_rows(chunk)

    @property
    def columns(self) -> dict[str, pl.DataType]:
        return dict(self.chunks[0].clean.schema)

    def table(self) -> CountedTable:
        end = self.end
        if end is None:
            raise PipelineError("a table's chunks ended before its last chunk")
        first = self.chunks[0]
        return CountedTable(
            dataset=first.dataset,
            source=first.source,
            rows_received=end.rows_received,
            clean=first.clean,
            rejected=first.rejected,
            issues=pl.concat([c.issues for c in self.chunks]),
            file_issues=list(end.file_issues),
            clean_rows=end.rows_clean,
            rejected_rows=end.rows_rejected,
        )


def _without_clean_rows(chunk: TableChunk) -> TableChunk:
    end = chunk.end
    if end is not None:
        end = dataclasses.replace(end, rows_clean=0)
    return dataclasses.replace(chunk, clean=chunk.clean.clear(), end=end)


def _as_rejected(table: TableOutcome) -> TableOutcome:
    """The table as the warehouse should see it when the file as a whole was rejected."""
    if not table.accepted:
        return table
    return TableOutcome(
        dataset=table.dataset,
        source=table.source,
        rows_received=table.rows_received,
        clean=table.clean.clear(),
        rejected=table.rejected,
        issues=table.issues,
        file_issues=table.file_issues,
    )


def _dataset_status(accepted: bool, replace: bool, load: LoadResult) -> DatasetStatus:
    if not accepted:
        return DatasetStatus.REJECTED
    if not replace:
        return DatasetStatus.HELD
    return DatasetStatus.ACCEPTED if load.became_current else DatasetStatus.SUPERSEDED


def rejected_by_rule(table: TableOutcome) -> dict[str, int]:
    """Rejected rows per rule broken (a row breaking two rules counts under both)."""
    errors = table.issues.filter(pl.col("severity") == Severity.ERROR.value)
    counts = errors.unique([ROW_NUMBER, "rule"]).group_by("rule").len().sort("rule")
    return {rule: int(n) for rule, n in counts.iter_rows()}


def _error_rules(issues: list[FileIssue]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i.rule for i in issues if i.severity is Severity.ERROR))


# --- the blocking checks --------------------------------------------------------------------


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


def newest_service_date(table: TableOutcome) -> date | None:
    """The latest service-event date in the table's valid rows (None if it has none)."""
    from ingest.warehouse import service_date_columns

    columns = [c for c in service_date_columns(table.dataset) if c in table.clean.columns]
    if not columns or table.clean.is_empty():
        return None
    newest = table.clean.select(pl.max_horizontal(pl.col(columns).max())).item()
    return newest if isinstance(newest, date) else None


# --- duplicates, audit and report -----------------------------------------------------------


def _record_duplicate(services: Services, received: Received) -> SubmissionResult:
    result = _result(services, received, SubmissionStatus.DUPLICATE, (), ())
    services.warehouse.record_submission(_audit_rows(services, result))
    outcome = SubmissionOutcome(la_code=received.la_code, key_id=result.key_id, tables=[])
    _write_report(services, result, outcome)
    return result


def _result(
    services: Services,
    received: Received,
    status: SubmissionStatus,
    file_rules: tuple[str, ...],
    datasets: tuple[DatasetResult, ...],
) -> SubmissionResult:
    return SubmissionResult(
        la_code=received.la_code,
        submission_id=received.submission_id,
        receipt_id=received.receipt_id,
        received_at=received.received_at,
        sha256=received.sha256,
        size_bytes=received.size_bytes,
        key_id=services.tokeniser.key_id,
        status=status,
        file_rules=file_rules,
        datasets=datasets,
        report_name=report_file_name(received.received_at, received.submission_id),
    )


def _audit_rows(services: Services, result: SubmissionResult) -> list[SubmissionRecord]:
    """One row per dataset in the file, or one for the whole file when it has none."""
    from ingest.warehouse import SubmissionRecord

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
            sha256=result.sha256,
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


def _write_report(services: Services, result: SubmissionResult, outcome: SubmissionOutcome) -> None:
    if services.drop is None:
        return
    text = render_report(
        outcome,
        received_at=result.received_at,
        sha256=result.sha256,
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
    from ingest.warehouse import cross_check_findings

    return cross_check_findings(services.warehouse, result.la_code)


def held_check_lines(result: SubmissionResult) -> dict[str, list[str]]:
    """Per dataset held back, its failed blocking checks in words, for the LA's report.

    The checks' own descriptions are not used: they quote the return's newest service date.
    """
    return {
        dataset.dataset: [f"{c.value}: {CHECK_DESCRIPTIONS[c]}" for c in dataset.failed_checks]
        for dataset in result.datasets
        if dataset.status is DatasetStatus.HELD
    }
