"""Rows into the warehouse through each database's native bulk path, chosen by dialect.

DuckDB scans an Arrow table registered on the same connection; PostgreSQL streams CSV through
`COPY`. Both run inside the SQLAlchemy transaction, so a load is all or nothing.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import polars as pl
import sqlalchemy as sa
from psycopg import sql

from ingest.warehouse.errors import WarehouseError


def driver_connection(conn: sa.Connection) -> Any:
    """The database driver's own connection, inside the SQLAlchemy transaction."""
    raw = conn.connection.driver_connection
    if raw is None:
        raise WarehouseError("the warehouse connection is closed")
    return raw


class BulkInserter(Protocol):
    """Appends a frame (columns named as the table's) to a table, inside `conn`'s transaction."""

    def insert(self, conn: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> None: ...


class DuckDBArrowInserter:
    """DuckDB scans the frame's Arrow buffers directly, with no copy through Python."""

    def insert(self, conn: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> None:
        if frame.is_empty():
            return
        preparer = conn.dialect.identifier_preparer
        columns = ", ".join(preparer.quote(c) for c in frame.columns)
        view = f"incoming_{uuid.uuid4().hex}"
        raw = driver_connection(conn)
        raw.register(view, frame.to_arrow(compat_level=pl.CompatLevel.newest()))
        try:
            raw.execute(
                f"INSERT INTO {qualified_table(conn, table)} ({columns}) "  # noqa: S608 (quoted identifiers)
                f"SELECT {columns} FROM {view}"
            )
        finally:
            raw.unregister(view)


class PostgresCopyInserter:
    """PostgreSQL's COPY, fed CSV in chunks so memory stays bounded by a chunk.

    Polars writes a null as an empty field and an empty string as `""`, which is exactly how
    COPY's CSV format tells them apart.
    """

    chunk_rows = 100_000

    def insert(self, conn: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> None:
        if frame.is_empty():
            return
        statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
            sql.Identifier(conn.schema_for_object(table) or "public", table.name),
            sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns),
        )
        raw = driver_connection(conn)
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for chunk in frame.iter_slices(self.chunk_rows):
                buffer = io.BytesIO()
                chunk.write_csv(buffer, include_header=False)
                copy.write(buffer.getvalue())


def qualified_table(conn: sa.Connection, table: sa.Table) -> str:
    """`table`'s quoted name as `conn` sees it (its `schema_translate_map` applied)."""
    preparer = conn.dialect.identifier_preparer
    schema = conn.schema_for_object(table)
    name = preparer.quote(table.name)
    return f"{preparer.quote_schema(schema)}.{name}" if schema else name


_BULK_INSERTERS: dict[str, Callable[[], BulkInserter]] = {
    "duckdb": DuckDBArrowInserter,
    "postgresql": PostgresCopyInserter,
}


def bulk_inserter_for(dialect: str) -> BulkInserter:
    if dialect not in _BULK_INSERTERS:
        raise NotImplementedError(
            f"no bulk-load path for the {dialect!r} warehouse; supported: "
            + ", ".join(sorted(_BULK_INSERTERS))
        )
    return _BULK_INSERTERS[dialect]()
