"""Loading a return: one dataset of one submission, all or nothing, chunk by chunk.

A whole table (`load_return`) is loaded as a table of one chunk, by the same code as a table
checked a slice at a time (`load_return_chunks`, `schemas.chunked`). History, quarantine and
issues are replaced by submission (so a re-run changes nothing). The LA's rows in
`clean.<dataset>` are replaced only when the return is accepted and is the latest received
(ties broken by submission id), and its `ReplacePolicy` agrees (a blocking check can load
history without replacing the current return). Rows of people and families the LA has
withdrawn are left out everywhere; a `withdrawals` return also removes them from every clean,
history and quarantine table.

Memory holds one chunk at a time, and the return still goes in all or nothing: on PostgreSQL
every chunk is `COPY`ed inside the one transaction; on DuckDB the chunks of a table checked a
slice at a time go through a Parquet spool (`ingest.warehouse.spool`) which one transaction
then inserts. A whole table, or a `withdrawals` return (always small), is inserted directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

import polars as pl
import sqlalchemy as sa

from ingest.warehouse.audit import current_row, issue_table_rows
from ingest.warehouse.errors import WarehouseLoadError
from ingest.warehouse.layout import (
    RULES_COLUMN,
    WITHDRAWALS,
    check_dataset,
    dataset_column_types,
    service_date_columns,
    to_stored_time,
)
from ingest.warehouse.session import WarehouseParts
from ingest.warehouse.spool import ParquetSpool, open_spool, spool_insert_settings
from ingest.warehouse.withdrawals import (
    NONE_WITHDRAWN,
    Withdrawn,
    record_withdrawals,
    withdrawn_tokens,
)
from pseudonymise.la_code import check_la_code
from schemas.chunked import TableChunk, TableEnd
from schemas.outcome import ISSUE_SCHEMA, ROW_NUMBER, TableOutcome, file_issue_rows


@dataclass(frozen=True)
class LoadResult:
    la_code: str
    dataset: str
    submission_id: str
    became_current: bool  # the return now holds the LA's rows in clean.<dataset>
    # Why it did not: "not_accepted" (file-level error, or no clean rows: an empty return never
    # wipes data), "not_replacing" (its replace policy held it back) or "newer_return".
    skipped_reason: str | None
    current_submission_id: str | None  # the LA's current return for the dataset after the load
    rows_loaded: int  # rows in history from this return (withdrawn people and families left out)
    rows_withdrawn: int  # accepted rows left out because the person or family has withdrawn
    rows_quarantined: int
    issues_recorded: int


@dataclass(frozen=True)
class ChunkTotals:
    """What a return added up to, for deciding whether it replaces the LA's current rows (the
    blocking checks) once its last chunk is in."""

    rows_received: int
    rows_clean: int
    rows_rejected: int
    newest_service_date: date | None  # the latest service date in its clean rows


class ReplacePolicy(Protocol):
    """Whether an accepted return replaces the LA's current rows, from its totals: asked once
    its last chunk is in (never for a return that is not accepted)."""

    def decide(self, totals: ChunkTotals) -> bool: ...


@dataclass(frozen=True)
class FixedReplace:
    """The same answer whatever the totals."""

    replace: bool

    def decide(self, totals: ChunkTotals) -> bool:
        return self.replace


def _policy(replace: bool | ReplacePolicy) -> ReplacePolicy:
    return FixedReplace(replace) if isinstance(replace, bool) else replace


class CleanRows(Protocol):
    """A table of a return, or a chunk of one: its dataset and its valid rows."""

    @property
    def dataset(self) -> str: ...

    @property
    def clean(self) -> pl.DataFrame: ...


def newest_service_date(rows: CleanRows) -> date | None:
    """The latest service-event date in the valid rows (None if they have none)."""
    columns = [c for c in service_date_columns(rows.dataset) if c in rows.clean.columns]
    if not columns or rows.clean.is_empty():
        return None
    newest = rows.clean.select(pl.max_horizontal(pl.col(columns).max())).item()
    return newest if isinstance(newest, date) else None


@dataclass(frozen=True)
class _ReturnLoad:
    """Which return is loaded: one dataset of one submission."""

    la_code: str
    dataset: str
    submission_id: str
    key_id: str
    received_at: datetime  # stored form: UTC, no zone

    @property
    def what(self) -> str:
        return f"loading {self.dataset} for LA {self.la_code}"


@dataclass
class _ChunkCounts:
    """Running totals of a return loaded chunk by chunk."""

    clean: int = 0
    kept: int = 0  # clean rows not left out for a withdrawal
    quarantined: int = 0
    issues: int = 0
    newest_service_date: date | None = None
    end: TableEnd | None = None  # from the table's last chunk

    def add(
        self, chunk: TableChunk, clean: pl.DataFrame, kept: pl.DataFrame, quarantined: pl.DataFrame
    ) -> None:
        self.clean += clean.height
        self.kept += kept.height
        self.quarantined += quarantined.height
        self.issues += chunk.issues.height
        newest = newest_service_date(chunk)
        if newest is not None and (
            self.newest_service_date is None or newest > self.newest_service_date
        ):
            self.newest_service_date = newest


class ReturnLoader(WarehouseParts):
    """Loads returns into the warehouse's tables (see the module's docstring)."""

    def load_return(
        self,
        *,
        la_code: str,
        dataset: str,
        submission_id: str,
        key_id: str,
        received_at: datetime,
        table: TableOutcome,
        replace: bool | ReplacePolicy = True,
    ) -> LoadResult:
        """Load one dataset of one submission, in one transaction: a table of one chunk.

        `replace` as for `load_return_chunks`.
        """
        load = _return_load(la_code, dataset, submission_id, key_id, received_at)
        if table.dataset != dataset:
            raise WarehouseLoadError("the table outcome is for another dataset")
        end = TableEnd(
            rows_received=table.rows_received,
            rows_clean=table.clean.height,
            rows_rejected=table.rejected.height,
            file_issues=tuple(table.file_issues),
        )
        chunk = TableChunk(
            dataset=dataset,
            source=table.source,
            rows_received=table.rows_received,
            clean=table.clean,
            rejected=table.rejected,
            issues=table.issues,
            end=end,
        )
        return self._load_directly(load, [chunk], _policy(replace))

    def load_return_chunks(
        self,
        *,
        la_code: str,
        dataset: str,
        submission_id: str,
        key_id: str,
        received_at: datetime,
        chunks: Iterable[TableChunk],
        replace: bool | ReplacePolicy = True,
    ) -> LoadResult:
        """`load_return` for a table checked a slice at a time (`schemas.chunked`).

        The rows are written to the database once, and a spool is removed whatever happens.
        An exception from the chunks (say `WholeFileNeeded`) leaves nothing behind. Once the
        table's last chunk (`end`) is in, `replace` (a policy's answer for the totals, e.g.
        the blocking checks) decides whether this submission's rows become the LA's current
        rows.
        """
        load = _return_load(la_code, dataset, submission_id, key_id, received_at)
        policy = _policy(replace)
        if self._session.engine.dialect.name == "duckdb" and dataset != WITHDRAWALS:
            return self._session.run(
                load.what,
                lambda conn: self._load_spooled(conn, load, chunks, policy),
                error=WarehouseLoadError,
                in_transaction=False,
            )
        return self._load_directly(load, chunks, policy)

    def _load_directly(
        self, load: _ReturnLoad, chunks: Iterable[TableChunk], policy: ReplacePolicy
    ) -> LoadResult:
        """Every chunk inserted as it comes, inside one transaction."""

        def load_chunks(conn: sa.Connection) -> LoadResult:
            self._clear_submission(conn, load)
            targets = self._final_targets(load.dataset)

            def insert(target: str, frame: pl.DataFrame) -> None:
                self._inserter.insert(conn, targets[target], frame)

            counts = _write_chunks(insert, load, chunks, self._withdrawn(conn, load))
            return self._finish_chunks(conn, load, counts, policy)

        return self._session.run(load.what, load_chunks, error=WarehouseLoadError)

    def _load_spooled(
        self,
        conn: sa.Connection,
        load: _ReturnLoad,
        chunks: Iterable[TableChunk],
        policy: ReplacePolicy,
    ) -> LoadResult:
        """The DuckDB way: chunks to a Parquet spool, then one transaction inserts it.

        `conn` stays open throughout: DuckDB's file lock keeps other processes (and their
        clearing of abandoned spools) out until the spool is gone.
        """
        with open_spool(self._session.engine.url.database) as spool:
            with conn.begin():
                withdrawn = self._withdrawn(conn, load)
            counts = _write_chunks(spool.write, load, chunks, withdrawn)
            with spool_insert_settings(conn, spool.limit_memory), conn.begin():
                self._clear_submission(conn, load)
                self._insert_spool(conn, spool, load.dataset)
                return self._finish_chunks(conn, load, counts, policy)

    def _insert_spool(self, conn: sa.Connection, spool: ParquetSpool, dataset: str) -> None:
        for target, table in self._final_targets(dataset).items():
            spool.insert_into(conn, table, target)

    def _withdrawn(self, conn: sa.Connection, load: _ReturnLoad) -> Withdrawn:
        """Whose rows to leave out (none from a `withdrawals` return itself)."""
        if load.dataset == WITHDRAWALS:
            return NONE_WITHDRAWN
        return withdrawn_tokens(conn, self._layout, load.la_code)

    def _final_targets(self, dataset: str) -> dict[str, sa.Table]:
        """Where a load's rejected rows, clean rows and issues go, by target name."""
        layout = self._layout
        return {
            "quarantine": layout.quarantine[dataset],
            "history": layout.history[dataset],
            "issues": layout.issues,
        }

    def _clear_submission(self, conn: sa.Connection, load: _ReturnLoad) -> None:
        """Remove what an earlier load of this submission left (a re-run changes nothing)."""
        layout = self._layout
        for target in (layout.quarantine[load.dataset], layout.history[load.dataset]):
            self._delete_submission(conn, target, load)
        issues = layout.issues
        conn.execute(
            sa.delete(issues).where(
                issues.c.submission_id == load.submission_id,
                issues.c.la_code == load.la_code,
                issues.c.dataset == load.dataset,
            )
        )

    def _delete_submission(self, conn: sa.Connection, target: sa.Table, load: _ReturnLoad) -> None:
        conn.execute(
            sa.delete(target).where(
                target.c.la_code == load.la_code, target.c.submission_id == load.submission_id
            )
        )

    def _finish_chunks(
        self, conn: sa.Connection, load: _ReturnLoad, counts: _ChunkCounts, policy: ReplacePolicy
    ) -> LoadResult:
        """With every chunk's rows in place: the table's issues, the withdrawals a
        `withdrawals` return records, then the current rows."""
        end = counts.end
        assert end is not None
        table_issues = issue_table_rows(
            file_issue_rows(end.file_issues),
            submission_id=load.submission_id,
            la_code=load.la_code,
            dataset=load.dataset,
        )
        self._inserter.insert(conn, self._layout.issues, table_issues)
        accepted = end.accepted and end.rows_clean > 0
        if not accepted:
            self._delete_submission(conn, self._layout.history[load.dataset], load)
        elif load.dataset == WITHDRAWALS:
            record_withdrawals(conn, self._layout, load.la_code, load.submission_id)
        totals = ChunkTotals(
            end.rows_received, end.rows_clean, end.rows_rejected, counts.newest_service_date
        )
        skipped = self._skip_reason(conn, load, accepted, policy, totals)
        if skipped is None:
            self._mark_current(conn, load)
        current = current_row(conn, self._layout, load.la_code, load.dataset)
        return LoadResult(
            la_code=load.la_code,
            dataset=load.dataset,
            submission_id=load.submission_id,
            became_current=skipped is None,
            skipped_reason=skipped,
            current_submission_id=None if current is None else str(current.submission_id),
            rows_loaded=counts.kept if accepted else 0,
            rows_withdrawn=counts.clean - counts.kept if accepted else 0,
            rows_quarantined=counts.quarantined,
            issues_recorded=counts.issues + len(end.file_issues),
        )

    def _skip_reason(
        self,
        conn: sa.Connection,
        load: _ReturnLoad,
        accepted: bool,
        policy: ReplacePolicy,
        totals: ChunkTotals,
    ) -> str | None:
        if not accepted:
            return "not_accepted"
        if not policy.decide(totals):
            return "not_replacing"
        current = current_row(conn, self._layout, load.la_code, load.dataset)
        if current is not None and (current.received_at, current.submission_id) > (
            load.received_at,
            load.submission_id,
        ):
            return "newer_return"
        return None

    def _mark_current(self, conn: sa.Connection, load: _ReturnLoad) -> None:
        current = self._layout.current_returns
        conn.execute(
            sa.delete(current).where(
                current.c.la_code == load.la_code, current.c.dataset == load.dataset
            )
        )
        conn.execute(
            sa.insert(current).values(
                la_code=load.la_code,
                dataset=load.dataset,
                submission_id=load.submission_id,
                received_at=load.received_at,
            )
        )


def _return_load(
    la_code: str, dataset: str, submission_id: str, key_id: str, received_at: datetime
) -> _ReturnLoad:
    return _ReturnLoad(
        la_code=check_la_code(la_code),
        dataset=check_dataset(dataset),
        submission_id=submission_id,
        key_id=key_id,
        received_at=to_stored_time(received_at),
    )


def _write_chunks(
    write: Callable[[str, pl.DataFrame], None],
    load: _ReturnLoad,
    chunks: Iterable[TableChunk],
    withdrawn: Withdrawn,
) -> _ChunkCounts:
    """Every chunk's rows to `write` (by `_final_targets` name); the counts, with `end`."""
    counts = _ChunkCounts()
    meta = (load.la_code, load.submission_id, load.key_id)
    for chunk in chunks:
        if chunk.dataset != load.dataset:
            raise WarehouseLoadError("a chunk of another dataset was given")
        clean = _conformed_rows(chunk.clean, load.dataset, "clean rows")
        rejected = _conformed_rows(chunk.rejected, load.dataset, "rejected rows", rules=True)
        kept = withdrawn.left_out_of(clean)
        quarantined = withdrawn.left_out_of(rejected)
        issues = _conform(chunk.issues, ISSUE_SCHEMA, f"{load.dataset} issues")
        write("quarantine", _with_meta(quarantined, *meta))
        write("history", _with_meta(kept, *meta))
        write(
            "issues",
            issue_table_rows(
                issues, submission_id=load.submission_id, la_code=load.la_code, dataset=load.dataset
            ),
        )
        counts.add(chunk, clean, kept, quarantined)
        counts.end = chunk.end or counts.end
    if counts.end is None:
        raise WarehouseLoadError("the chunks ended before the table's last chunk")
    return counts


def _conformed_rows(
    frame: pl.DataFrame, dataset: str, what: str, *, rules: bool = False
) -> pl.DataFrame:
    expected: dict[str, pl.DataType] = {ROW_NUMBER: pl.Int64()}
    expected.update(dataset_column_types(dataset))
    if rules:
        expected[RULES_COLUMN] = pl.String()
    return _conform(frame, expected, f"{dataset} {what}")


def _safe_cast(actual: pl.DataType, expected: pl.DataType) -> bool:
    """Casts that cannot fail or change a value: all-null columns and widening numbers."""
    if actual == pl.Null:
        return True
    if expected == pl.Int64:
        return actual.is_integer() and actual not in (pl.UInt64,)
    if expected == pl.Float64:
        return actual == pl.Float32 or (actual.is_integer() and actual not in (pl.Int64, pl.UInt64))
    return False


def _conform(frame: pl.DataFrame, expected: dict[str, pl.DataType], what: str) -> pl.DataFrame:
    """`frame` with exactly `expected`'s columns, in order and type, or a WarehouseLoadError.

    Unexpected columns are counted, not named: a name not in the contract could come from a file.
    """
    missing = [c for c in expected if c not in frame.columns]
    unexpected = sum(1 for c in frame.columns if c not in expected)
    if missing or unexpected:
        raise WarehouseLoadError(
            f"{what}: missing columns {missing}, {unexpected} unexpected column(s)"
        )
    columns = []
    for name, dtype in expected.items():
        actual = frame.schema[name]
        if actual == dtype:
            columns.append(pl.col(name))
        elif _safe_cast(actual, dtype):
            columns.append(pl.col(name).cast(dtype))
        else:
            raise WarehouseLoadError(f"{what}: column {name} is {actual}, expected {dtype}")
    return frame.select(columns)


def _with_meta(frame: pl.DataFrame, la_code: str, submission_id: str, key_id: str) -> pl.DataFrame:
    return frame.select(
        pl.lit(la_code, pl.String()).alias("la_code"),
        pl.lit(submission_id, pl.String()).alias("submission_id"),
        pl.lit(key_id, pl.String()).alias("key_id"),
        pl.all(),
    )
