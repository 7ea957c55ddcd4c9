"""Loading a checked submission into the warehouse, as the pipeline does, chunk by chunk when
the warehouse can take chunks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from benchmarks.stages import WAITING, StageClock
from ingest.warehouse import Warehouse
from schemas.chunked import ChunkedSubmission, TableChunk, tables_of

SUBMISSION_ID = "benchmark-submission"


@dataclass(frozen=True)
class LoadCounts:
    rows_received: int
    rows_loaded: int
    rows_rejected: int


def open_warehouse(url: str) -> Warehouse:
    """The warehouse at `url` with its tables created (setup, not part of the timed path)."""
    warehouse = Warehouse(url)
    warehouse.create_schema()
    return warehouse


def load_submission(
    warehouse: Warehouse,
    submission: ChunkedSubmission,
    *,
    clock: StageClock,
    received_at: datetime,
) -> LoadCounts:
    """Every table of the submission, chunk by chunk, in one transaction per table.

    The whole load is timed as "load"; the checking stages run inside it (the warehouse pulls
    the chunks) and their time goes to their own stages.
    """
    received = loaded = rejected = 0
    for chunks in tables_of(submission):
        with clock.stage("load"):
            counted = _Counted(chunks, clock)
            result = warehouse.load_return_chunks(
                la_code=submission.la_code,
                dataset=counted.dataset,
                submission_id=SUBMISSION_ID,
                key_id=submission.key_id,
                received_at=received_at,
                chunks=counted,
            )
        received += counted.rows_received
        loaded += result.rows_loaded
        rejected += result.rows_quarantined
    return LoadCounts(received, loaded, rejected)


class _Counted:
    """A table's chunks, passed through, counting the rows received."""

    def __init__(self, chunks: Iterator[TableChunk], clock: StageClock) -> None:
        self._clock = clock
        with clock.stage(WAITING):
            self._first = next(chunks)
        self._rest = chunks
        self.dataset = self._first.dataset
        self.rows_received = 0

    def __iter__(self) -> Iterator[TableChunk]:
        chunk: TableChunk | None = self._first
        while chunk is not None:
            self.rows_received += chunk.rows_received
            yield chunk
            with self._clock.stage(WAITING):
                chunk = next(self._rest, None)
