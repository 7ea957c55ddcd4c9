"""Processing one received file: duplicate? -> check (pseudonymise, validate) -> load the
warehouse, the blocking checks deciding whether it replaces the LA's current return -> report to
the LA -> audit -> the file leaves the inbox.

A large file is checked and loaded a chunk at a time (`schemas.chunked`), with the same checks,
statuses and audit as a file checked whole.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypedDict

import polars as pl

# Called through their modules (`schemas.submission.check_submission`), so that a test can
# count the calls by patching the modules.
import schemas.chunked
import schemas.submission
from ingest.processing.audit import audit_rows
from ingest.processing.decide import ReplaceDecision
from ingest.processing.errors import PipelineError
from ingest.processing.receive import Received, is_duplicate, leave_inbox
from ingest.processing.report import write_report
from ingest.processing.results import (
    DatasetResult,
    DatasetStatus,
    SubmissionResult,
    SubmissionStatus,
)
from ingest.processing.services import Services
from ingest.warehouse import ChunkTotals, LoadResult
from schemas.chunked import DEFAULT_CHUNK_ROWS, DEFAULT_MIN_BYTES, TableChunk, TableEnd, tables_of
from schemas.outcome import ROW_NUMBER, CountedTable, FileIssue, SubmissionOutcome, TableOutcome
from schemas.reader import WholeFileNeeded
from schemas.report import report_file_name
from schemas.rules import Severity


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
    if detect_duplicate and is_duplicate(
        services, received.la_code, received.content, received.content_hmac
    ):
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
    _record_outcome(services, received, result, outcome)
    return result


def _record_duplicate(services: Services, received: Received) -> SubmissionResult:
    result = _result(services, received, SubmissionStatus.DUPLICATE, (), ())
    outcome = SubmissionOutcome(la_code=received.la_code, key_id=result.key_id, tables=[])
    _record_outcome(services, received, result, outcome, report_first=False)
    return result


def _record_outcome(
    services: Services,
    received: Received,
    result: SubmissionResult,
    outcome: SubmissionOutcome,
    *,
    report_first: bool = True,
) -> None:
    """Report, audit, then empty the inbox, so a process killed in between loses nothing.

    The audit row marks the inbox file done, so the report comes first: processing the landed
    file again writes the same report under the same name. A duplicate is not landed and its
    received time is on record only in its audit row, so its report comes after, and is
    written again from the audit row if the process died before the file left the inbox.
    """
    if report_first:
        write_report(services, result, outcome)
    services.warehouse.record_submission(
        audit_rows(services, result), taken_file=received.taken_file
    )
    if not report_first:
        write_report(services, result, outcome)
    leave_inbox(services, received)


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
        content_hmac=received.content_hmac,
        size_bytes=received.size_bytes,
        key_id=services.tokeniser.key_id,
        status=status,
        file_rules=file_rules,
        datasets=datasets,
        report_name=report_file_name(received.received_at, received.submission_id),
    )


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
    chunked_from = services.chunked_from_bytes
    if received.size_bytes >= (DEFAULT_MIN_BYTES if chunked_from is None else chunked_from):
        try:
            return _check_and_load_chunks(services, received, release_held=release_held)
        except WholeFileNeeded:
            pass  # nothing was loaded: the chunked load rolls back
    outcome = schemas.submission.check_submission(
        received.content,
        la_code=received.la_code,
        tokeniser=services.tokeniser,
        today=received.received_at.astimezone(UTC).date(),
    )
    datasets = tuple(
        _load_dataset(services, received, outcome, table, release_held=release_held)
        for table in outcome.tables
    )
    return outcome, datasets


def _load_dataset(
    services: Services,
    received: Received,
    outcome: SubmissionOutcome,
    table: TableOutcome,
    *,
    release_held: bool,
) -> DatasetResult:
    # A file-level error (a wrong LA code, say) rejects every dataset in the file.
    accepted = outcome.accepted and table.accepted
    decision = _replace_decision(services, received, table.dataset, release_held)
    load = services.warehouse.load_return(
        **_which_return(services, received, table.dataset),
        table=table if accepted else _as_rejected(table),
        replace=decision,
    )
    _decide_unasked(decision, table, accepted)
    return _dataset_result(
        table, load, accepted, decision, outcome.file_issues, dict(table.clean.schema)
    )


def _check_and_load_chunks(
    services: Services, received: Received, *, release_held: bool
) -> tuple[SubmissionOutcome, tuple[DatasetResult, ...]]:
    submission = schemas.chunked.check_submission_chunks(
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
    decision = _replace_decision(services, received, first.dataset, release_held)
    load = services.warehouse.load_return_chunks(
        **_which_return(services, received, first.dataset),
        chunks=tally.counted(itertools.chain([first], chunks)),
        replace=decision,
    )
    table = tally.table()
    accepted = tally.file_ok and table.accepted
    _decide_unasked(decision, table, accepted)
    return table, _dataset_result(table, load, accepted, decision, file_issues, tally.columns)


class _WhichReturn(TypedDict):
    """Which return the warehouse loads: one dataset of a received file, under the current key."""

    la_code: str
    dataset: str
    submission_id: str
    key_id: str
    received_at: datetime


def _which_return(services: Services, received: Received, dataset: str) -> _WhichReturn:
    return _WhichReturn(
        la_code=received.la_code,
        dataset=dataset,
        submission_id=received.submission_id,
        key_id=services.tokeniser.key_id,
        received_at=received.received_at,
    )


def _replace_decision(
    services: Services, received: Received, dataset: str, release_held: bool
) -> ReplaceDecision:
    previous = services.warehouse.previous_accepted(received.la_code, dataset)
    return ReplaceDecision(previous, received.received_at, release_held)


def _decide_unasked(decision: ReplaceDecision, table: TableOutcome, accepted: bool) -> None:
    """The blocking checks of an accepted return with no valid rows: the loader did not ask."""
    if accepted and not decision.decided:
        decision.decide(
            ChunkTotals(table.rows_received, table.rows_loaded, table.rows_rejected, None)
        )


def _dataset_result(
    table: TableOutcome,
    load: LoadResult,
    accepted: bool,
    decision: ReplaceDecision,
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


@dataclass
class _TableTally:
    """What processing keeps of a table loaded chunk by chunk: its issues and counts.

    When the file as a whole is rejected, the chunks are passed on without their clean rows,
    as `_as_rejected` does for a whole table.
    """

    file_ok: bool
    chunks: list[TableChunk] = field(default_factory=list)  # rows dropped: issues and schema
    end: TableEnd | None = None

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
