"""Dagster's SQLite run and event log storage, with one SQLAlchemy engine per process.

Dagster 1.13's SQLite storages build a new SQLAlchemy engine for every connection they open,
and the event log asks the database whether a table exists before every asset check event.
A run of this service opens about 170 connections, so building engines was about a third of
the demo's Dagster time (docs/PERFORMANCE.md). These subclasses keep everything else:
the same files, schema, migrations and `NullPool` (a new SQLite connection per transaction, so
several processes still share the files as before); they only reuse the engine, and remember
a table once it has been seen (tables are created by migrations, never dropped).

`dagster.yaml` names these classes; an instance configured with Dagster's own classes reads
the same files.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Self

import sqlalchemy as sa

# Dagster has no public API for subclassing its storages, hence the `dagster._` imports.
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy.pool import NullPool


class _EngineCache:
    """One engine for a connection string, made on first use (thread-safe)."""

    def __init__(self, conn_string: str, connect_args: Mapping[str, Any]) -> None:
        self._conn_string = conn_string
        self._connect_args = dict(connect_args)
        self._engine: sa.Engine | None = None
        self._lock = threading.Lock()

    def get(self) -> sa.Engine:
        with self._lock:
            if self._engine is None:
                self._engine = create_engine(
                    self._conn_string, poolclass=NullPool, connect_args=self._connect_args
                )
            return self._engine


class CachedEngineSqliteEventLogStorage(ConsolidatedSqliteEventLogStorage):
    """`ConsolidatedSqliteEventLogStorage` (one `event_log.db`), reusing its engine."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: _EngineCache | None = None
        self._tables_seen: set[str] = set()
        super().__init__(base_dir, inst_data)
        self._engines = _EngineCache(self._conn_string, {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})

    @contextmanager
    def _connect(self) -> Iterator[sa.Connection]:
        if self._engines is None:  # while the base class creates the database
            with super()._connect() as conn:
                yield conn
            return
        with self._engines.get().connect() as conn, conn.begin():
            yield conn

    def has_table(self, table_name: str) -> bool:
        if table_name in self._tables_seen:
            return True
        found = bool(super().has_table(table_name))
        if found:
            self._tables_seen.add(table_name)
        return found


class CachedEngineSqliteRunStorage(SqliteRunStorage):
    """`SqliteRunStorage` (one `runs.db`), reusing its engine."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(conn_string, inst_data)
        self._engines = _EngineCache(conn_string, {})

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> Self:
        return cls.from_local(inst_data=inst_data, **config_value)

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        with self._engines.get().connect() as conn, conn.begin():
            yield conn
