"""Checking a large CSV a slice at a time, with the outcome `check_submission` would give.

Memory then grows with the slice (`chunk_rows`), not the file: each slice is read, parsed,
pseudonymised, validated and handed on before the next is read. The one rule that spans
slices, a repeated key (every row carrying it is rejected), is settled first by a narrow
pass that reads only the key and `la_code` columns and tokenises the keys; those tokens
(32 hex characters a row) are the only thing kept for the whole file, and the main pass uses
them instead of tokenising the keys again.

    narrow pass   key + la_code cells -> key tokens for every row, repeated-key rows, LA check
    main pass     every slice: data rows -> parse -> pseudonymise -> validate -> split -> yield

Slices are independent once the narrow pass is done, so `workers` threads check several at
once (polars, pandera's polars backend and the HMAC run mostly outside the GIL); they are
handed on in file order, and memory holds about `workers` + 1 slices. Each thread also parses
its own slice of the CSV (`CsvSlice.read`), in both passes: the file is cut once, at record
boundaries, and a slice waits only for the one before it to be parsed to number its rows.

Anything `read_submission` has special rules for is checked whole by `check_submission`
and handed on as one chunk per table: ZIP and XLSX files, a header not in the first records,
and files smaller than `min_bytes`. Text that is not UTF-8 (a Windows-1252 export, say) is
noticed by the first slice that holds some, in the narrow pass, and a record wider than the
CSV's first record only by the main pass, after chunks may have been handed on: the iteration
then raises `WholeFileNeeded`, and the caller discards what it was given (a loader rolls its
transaction back) and checks the file whole with `check_submission`.

The consumer's protocol: chunks of one table come together, the table's last chunk carries
`end` (its totals and table-level issues, and has no rows itself); `file_issues` is complete
once the iteration is. `collect_submission` puts the chunks back together into the
`SubmissionOutcome` that `check_submission` returns, which is how the two are tested equal.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TypeVar

import polars as pl

from pseudonymise.tokens import Tokeniser
from schemas.contract import LA_CODE_COLUMN, Dataset, Field, Treatment
from schemas.datasets import DATASETS
from schemas.models import duplicated_key_rows
from schemas.outcome import (
    ROW_NUMBER,
    FileIssue,
    RawTable,
    SubmissionOutcome,
    TableOutcome,
    empty_issues,
    issue_frame,
)
from schemas.parse import parse_table
from schemas.reader.csv_slices import (
    CsvLayout,
    CsvPieces,
    CsvSlice,
    blank_headed_columns,
    blank_headed_issues,
    csv_layout,
    csv_pieces,
    csv_slices,
    data_rows,
    raw_columns,
)
from schemas.reader.grid import no_data_rows_issue
from schemas.rules import Severity
from schemas.submission import (
    CheckedRows,
    check_submission,
    checked_rows,
    clean_column_types,
    la_code_differs,
    la_code_mismatch_issue,
    rejected_column_types,
    table_issues,
)
from schemas.treatment import pseudonymise_table, validated_column, validated_dtype

DEFAULT_CHUNK_ROWS = 100_000
# Slices checked at once: one per core of the 2-core machines the service was measured on
# (docs/PERFORMANCE.md). Each one in flight adds a slice's working memory.
DEFAULT_WORKERS = 2
# Below this a file is checked whole: a second pass would cost more than the memory it saves.
DEFAULT_MIN_BYTES = 16 * 2**20


@dataclass(frozen=True)
class TableEnd:
    """What a table's chunks added up to, and the issues with the table as a whole."""

    rows_received: int
    rows_clean: int
    rows_rejected: int
    file_issues: tuple[FileIssue, ...]

    @property
    def accepted(self) -> bool:
        return not any(i.severity is Severity.ERROR for i in self.file_issues)


@dataclass(frozen=True)
class TableChunk:
    """Some rows of one table of a submission, pseudonymised, validated and split.

    Frames as in `TableOutcome`; `rows_received` counts this chunk's data rows. The table's
    last chunk has `end` set and no rows.
    """

    dataset: str
    source: str
    rows_received: int
    clean: pl.DataFrame
    rejected: pl.DataFrame
    issues: pl.DataFrame
    end: TableEnd | None = None


class ChunkedSubmission:
    """The chunks of one checked submission, produced as they are iterated (once only)."""

    def __init__(
        self,
        chunks: Iterator[TableChunk],
        la_code: str,
        key_id: str,
        file_issues: list[FileIssue],
    ) -> None:
        self._chunks = chunks
        self.la_code = la_code
        self.key_id = key_id
        self.file_issues = file_issues  # filled in as the chunks are made: complete at the end

    def __iter__(self) -> Iterator[TableChunk]:
        return self._chunks

    def close(self) -> None:
        """Stop making chunks (the worker thread, if any, stops at its next chunk)."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def check_submission_chunks(
    content: bytes | Path,
    *,
    la_code: str,
    tokeniser: Tokeniser,
    today: date,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    min_bytes: int = DEFAULT_MIN_BYTES,
    prefetch: int = 1,
    workers: int = DEFAULT_WORKERS,
) -> ChunkedSubmission:
    """`check_submission`, about `chunk_rows` rows at a time (see the module).

    With `prefetch` above 0 the chunks are made in a thread of their own, up to `prefetch`
    ahead of the consumer, so that checking the next chunk overlaps loading this one (both
    mostly run outside the GIL, in polars and DuckDB). `workers` slices are checked at once.
    """
    if chunk_rows < 1 or prefetch < 0 or workers < 1:
        raise ValueError("chunk_rows and workers must be positive and prefetch not negative")
    data = content.read_bytes() if isinstance(content, Path) else content
    context = _Context(
        la_code=la_code, tokeniser=tokeniser, today=today, chunk_rows=chunk_rows, workers=workers
    )
    file_issues: list[FileIssue] = []
    chunks = _chunks(data, context, min_bytes, file_issues)
    if prefetch:
        chunks = _prefetched(chunks, prefetch)
    return ChunkedSubmission(chunks, la_code, tokeniser.key_id, file_issues)


def _prefetched(items: Iterator[TableChunk], depth: int) -> Iterator[TableChunk]:
    """`items`, produced by a worker thread at most `depth` ahead; its errors re-raised here.

    Closing this generator early (the consumer failed) stops the worker at its next item.
    """
    ready: queue.Queue[TableChunk | BaseException | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: TableChunk | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(None)
        except BaseException as error:  # handed to the consumer, which re-raises it
            offer(error)

    worker = threading.Thread(target=produce, name="check-chunks", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def collect_submission(submission: ChunkedSubmission) -> SubmissionOutcome:
    """All the chunks put together: what `check_submission` gives for the same file."""
    tables: list[TableOutcome] = []
    pending: list[TableChunk] = []
    for chunk in submission:
        pending.append(chunk)
        if chunk.end is not None:
            tables.append(_table_outcome(pending, chunk.end))
            pending = []
    return SubmissionOutcome(
        la_code=submission.la_code,
        key_id=submission.key_id,
        tables=tables,
        file_issues=list(submission.file_issues),
    )


def tables_of(submission: ChunkedSubmission) -> Iterator[Iterator[TableChunk]]:
    """The submission's chunks grouped by table: one iterator per table, to be used up before
    the next is taken (e.g. one `Warehouse.load_return_chunks` call per table)."""
    chunks = iter(submission)
    for first in chunks:
        yield _one_table(first, chunks)


def _one_table(first: TableChunk, chunks: Iterator[TableChunk]) -> Iterator[TableChunk]:
    chunk = first
    while True:
        yield chunk
        if chunk.end is not None:
            return
        chunk = next(chunks)


# --- producing the chunks ------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    la_code: str
    tokeniser: Tokeniser
    today: date
    chunk_rows: int
    workers: int


def _chunks(
    data: bytes, context: _Context, min_bytes: int, file_issues: list[FileIssue]
) -> Iterator[TableChunk]:
    layout = csv_layout(data) if len(data) >= min_bytes else None
    if layout is None:
        outcome = check_submission(
            data, la_code=context.la_code, tokeniser=context.tokeniser, today=context.today
        )
        file_issues.extend(outcome.file_issues)
        for table in outcome.tables:
            yield from _whole_table_chunks(table)
        return
    yield from _csv_chunks(layout, context, file_issues)


def _whole_table_chunks(table: TableOutcome) -> Iterator[TableChunk]:
    yield TableChunk(
        table.dataset, table.source, table.rows_received, table.clean, table.rejected, table.issues
    )
    end = TableEnd(
        rows_received=table.rows_received,
        rows_clean=table.clean.height,
        rows_rejected=table.rejected.height,
        file_issues=tuple(table.file_issues),
    )
    yield _closing_chunk(table.dataset, table.source, end)


def _csv_chunks(
    layout: CsvLayout, context: _Context, file_issues: list[FileIssue]
) -> Iterator[TableChunk]:
    dataset = layout.dataset
    pieces = csv_pieces(layout, chunk_rows=context.chunk_rows)
    keys = _scan_keys(layout, pieces, context)
    file_issues.extend(layout.issues)
    file_issues.extend(blank_headed_issues(keys.blank_headed_with_data))
    if keys.la_code_differs:
        rows = _count_data_rows(layout, pieces)
        if rows == 0:
            file_issues.append(no_data_rows_issue(dataset))
            return
        end = TableEnd(rows, 0, 0, (la_code_mismatch_issue(""),))
        yield _closing_chunk(dataset.name, "", end)
        return
    totals = _Totals()
    for part in _checked_slices(layout, pieces, context, keys):
        totals.add(part)
        yield TableChunk(
            dataset.name, "", part.rows_received, part.clean, part.rejected, part.issues
        )
    if totals.received == 0:
        file_issues.append(no_data_rows_issue(dataset))
        return
    yield _closing_chunk(dataset.name, "", totals.end())


@dataclass
class _Totals:
    received: int = 0
    clean: int = 0
    rejected: int = 0

    def add(self, rows: _SliceRows) -> None:
        self.received += rows.rows_received
        self.clean += rows.clean.height
        self.rejected += rows.rejected.height

    def end(self) -> TableEnd:
        issues = tuple(table_issues(self.clean, ""))
        return TableEnd(self.received, self.clean, self.rejected, issues)


@dataclass(frozen=True)
class _SliceRows(CheckedRows):
    rows_received: int = 0


def _checked_slices(
    layout: CsvLayout, pieces: CsvPieces, context: _Context, keys: _KeyScan
) -> Iterator[_SliceRows]:
    dataset = layout.dataset
    repeated = duplicated_key_rows(keys.tokens, dataset)

    def check(piece: CsvSlice) -> _SliceRows | None:
        raw = data_rows(layout, piece.read())
        if raw.is_empty():
            return None
        rows = checked_rows(
            RawTable(dataset, "", raw),
            la_code=context.la_code,
            tokeniser=context.tokeniser,
            today=context.today,
            duplicated_rows=repeated,
            known_tokens=_known_tokens(keys.tokens, raw, dataset),
        )
        return _SliceRows(rows.clean, rows.rejected, rows.issues, rows_received=raw.height)

    for rows in in_order(check, csv_slices(layout, pieces), context.workers):
        if rows is not None:
            yield rows


T = TypeVar("T")
R = TypeVar("R")


def in_order(work: Callable[[T], R], items: Iterator[T], workers: int) -> Iterator[R]:
    """`work` on each item, in `workers` threads at once, the results in the items' order.

    An item is taken only when a thread is free for it (so at most `workers` are held, plus
    the result being handed on); an error from `work` or `items` is raised here, in order.
    Closing the iterator early cancels what has not started and waits for what has.
    """
    if workers == 1:
        yield from map(work, items)
        return
    running: deque[Future[R]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check-slice") as pool:
        try:
            for item in items:
                running.append(pool.submit(work, item))
                del item
                if len(running) >= workers:
                    yield running.popleft().result()
            while running:
                yield running.popleft().result()
        finally:
            for future in running:
                future.cancel()


def _closing_chunk(dataset_name: str, source: str, end: TableEnd) -> TableChunk:
    dataset = DATASETS[dataset_name]
    return TableChunk(
        dataset=dataset_name,
        source=source,
        rows_received=0,
        clean=pl.DataFrame(schema=clean_column_types(dataset)),
        rejected=pl.DataFrame(schema=rejected_column_types(dataset)),
        issues=empty_issues(),
        end=end,
    )


def _count_data_rows(layout: CsvLayout, pieces: CsvPieces) -> int:
    return sum(data_rows(layout, piece.read()).height for piece in csv_slices(layout, pieces))


# --- the narrow pass: keys, LA code, blank-headed columns -----------------------------------


@dataclass
class _KeyScan:
    tokens: pl.DataFrame  # ROW_NUMBER (ascending) + the key's validated columns, every record
    la_code_differs: bool = False
    blank_headed_with_data: set[int] = field(default_factory=set)


def _key_fields(dataset: Dataset) -> tuple[Field, ...]:
    return tuple(dataset.field(name) for name in dataset.key)


def _scan_keys(layout: CsvLayout, pieces: CsvPieces, context: _Context) -> _KeyScan:
    """Every record's key as `check_submission` would validate it, and the whole-file facts."""
    dataset = layout.dataset
    key_fields = _key_fields(dataset)
    names = {*dataset.key, LA_CODE_COLUMN}
    positions = sorted({*layout.positions(names), *layout.blank_headed})

    def scan_slice(piece: CsvSlice) -> tuple[set[int], bool, pl.DataFrame]:
        records = piece.read()
        blank_headed = blank_headed_columns(layout, records)
        raw = raw_columns(layout, records, names)
        del records
        differs = la_code_differs(raw, context.la_code)
        return blank_headed, differs, _key_tokens(RawTable(dataset, "", raw), key_fields, context)

    parts: list[pl.DataFrame] = []
    scan = _KeyScan(tokens=pl.DataFrame())
    slices = csv_slices(layout, pieces, positions=positions)
    for blank_headed, differs, tokens in in_order(scan_slice, slices, context.workers):
        scan.blank_headed_with_data |= blank_headed
        scan.la_code_differs = scan.la_code_differs or differs
        parts.append(tokens)
    scan.tokens = pl.concat(parts) if parts else _key_tokens_schema(dataset)
    return scan


def _key_tokens(table: RawTable, key_fields: tuple[Field, ...], context: _Context) -> pl.DataFrame:
    typed, _ = parse_table(table, today=context.today)
    pseudonymised, _ = pseudonymise_table(
        typed, table.dataset, context.tokeniser, context.la_code, fields=key_fields
    )
    return pseudonymised.select(ROW_NUMBER, *(validated_column(f) for f in key_fields))


def _key_tokens_schema(dataset: Dataset) -> pl.DataFrame:
    schema: dict[str, pl.DataType] = {ROW_NUMBER: pl.Int64()}
    schema |= {validated_column(f): validated_dtype(f) for f in _key_fields(dataset)}
    return pl.DataFrame(schema=schema)


def _known_tokens(
    tokens: pl.DataFrame, raw: pl.DataFrame, dataset: Dataset
) -> dict[str, pl.Series]:
    """The narrow pass's tokens for this slice's rows, by field name, in the slice's order."""
    token_fields = [f for f in _key_fields(dataset) if f.treatment is Treatment.TOKEN]
    if not token_fields:
        return {}
    numbers = raw.get_column(ROW_NUMBER)
    first, last = int(numbers[0]), int(numbers[-1])  # ascending in a slice
    all_numbers = tokens.get_column(ROW_NUMBER)
    start = all_numbers.search_sorted(first, side="left")
    stop = all_numbers.search_sorted(last, side="right")
    window = tokens.slice(start, stop - start)
    joined = raw.select(ROW_NUMBER).join(window, on=ROW_NUMBER, how="left", maintain_order="left")
    return {f.name: joined.get_column(validated_column(f)) for f in token_fields}


# --- putting chunks together ----------------------------------------------------------------


def _table_outcome(chunks: list[TableChunk], end: TableEnd) -> TableOutcome:
    first = chunks[0]
    return TableOutcome(
        dataset=first.dataset,
        source=first.source,
        rows_received=end.rows_received,
        clean=pl.concat([c.clean for c in chunks]),
        rejected=pl.concat([c.rejected for c in chunks]),
        issues=issue_frame(c.issues for c in chunks),
        file_issues=list(end.file_issues),
    )
