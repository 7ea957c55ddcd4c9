"""The warehouse's engine and transactions: one transaction per operation, rolled back on a
database error, which is then described by its class only (its message may quote a value).

A DuckDB file has one writer process at a time: it is opened per transaction, and a process
finding it locked waits for its turn.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import psycopg
import sqlalchemy as sa
from sqlalchemy.pool import NullPool, StaticPool

from ingest.warehouse.bulk import BulkInserter
from ingest.warehouse.errors import WarehouseError
from ingest.warehouse.layout import Layout

DATABASE_ERRORS = (sa.exc.SQLAlchemyError, duckdb.Error, psycopg.Error)
_DUCKDB_LOCK_WAIT_SECONDS = 60.0

T = TypeVar("T")


def duckdb_url(path: Path) -> str:
    """The default warehouse URL: a DuckDB file."""
    return f"duckdb:///{path.expanduser().resolve()}"


def describe_database_error(exc: BaseException) -> str:
    """The error's class (and SQLSTATE): its message may quote values, so it is not used."""
    original = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    state = getattr(original, "sqlstate", None)
    name = type(original).__name__
    return f"{name} (SQLSTATE {state})" if isinstance(state, str) else name


def create_engine(url: str, schema_map: Mapping[str, str] | None = None) -> sa.Engine:
    """The engine for `url`, its schemas renamed by `schema_map` (see `Warehouse`)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "duckdb":
        engine = sa.create_engine(parsed, pool_pre_ping=True)
    else:
        if parsed.database in (None, "", ":memory:"):
            engine = sa.create_engine(parsed, poolclass=StaticPool)
        else:
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            # A DuckDB file has one writer process at a time: open it per transaction (no
            # pool), so Dagster's run processes take turns instead of one holding the lock.
            engine = sa.create_engine(parsed, poolclass=NullPool)
        sa.event.listen(engine, "connect", _without_progress_bar)
    if schema_map is not None:
        engine = engine.execution_options(schema_translate_map=dict(schema_map))
    return engine


def _without_progress_bar(dbapi_connection: Any, _record: Any) -> None:
    """DuckDB would otherwise draw a progress bar on the terminal for a statement over 2 s."""
    dbapi_connection.execute("SET enable_progress_bar = false")


def _is_duckdb_lock_conflict(exc: BaseException) -> bool:
    original = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    return isinstance(original, duckdb.IOException) and "lock" in str(original).lower()


class Session:
    """Transactions on the warehouse's engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def run(
        self,
        what: str,
        work: Callable[[sa.Connection], T],
        *,
        error: type[WarehouseError] = WarehouseError,
        in_transaction: bool = True,
    ) -> T:
        """`work` in one transaction; a database error rolls it back and becomes `error`.

        With `in_transaction` false, `work` gets the connection alone and begins its own
        transactions. The new error is raised outside the `except` block so that it carries
        no context: the database's message may quote a value.
        """
        failure = ""
        try:
            with self.connect() as conn:
                if not in_transaction:
                    return work(conn)
                with conn.begin():
                    return work(conn)
        except DATABASE_ERRORS as exc:
            failure = describe_database_error(exc)
        raise error(f"{what} failed and was rolled back: {failure}")

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        with self.connect() as conn, conn.begin():
            yield conn

    def connect(self) -> sa.Connection:
        """A connection; waits while another process holds a DuckDB file's lock."""
        deadline = time.monotonic() + _DUCKDB_LOCK_WAIT_SECONDS
        delay = 0.05
        while True:
            try:
                return self.engine.connect()
            except sa.exc.DBAPIError as exc:
                if not _is_duckdb_lock_conflict(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


class WarehouseParts:
    """What each part of the warehouse (loading, the audit trail) works with: the session, the
    layout and the database's bulk inserter."""

    def __init__(self, session: Session, layout: Layout, inserter: BulkInserter) -> None:
        self._session = session
        self._layout = layout
        self._inserter = inserter
