"""Engines: passwords hidden, bulk paths by dialect, DuckDB's file lock, errors.

Every behaviour test runs on DuckDB and, when the local server answers, on PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from ingest.warehouse import (
    Warehouse,
    WarehouseError,
)


def test_repr_hides_the_password() -> None:
    warehouse = Warehouse("postgresql+psycopg://trial:s3cret-pw@127.0.0.1:5432/trial")

    assert "s3cret-pw" not in repr(warehouse)


def test_an_unsupported_dialect_has_no_bulk_path() -> None:
    with pytest.raises(NotImplementedError, match="sqlite"):
        Warehouse("sqlite://")


HOLD_LOCK = """
import sys, time, duckdb
connection = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.close()
"""


def test_waits_while_another_process_holds_the_duckdb_file(duck: Warehouse) -> None:
    path = duck.engine.url.database
    assert path is not None
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, path, "0.5"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()

        assert not duck.is_duplicate("201", "ab" * 32)

        assert time.monotonic() - started > 0.2  # it waited for the other process
    finally:
        holder.wait(timeout=30)


TRY_LOCK = """
import sys, duckdb
try:
    duckdb.connect(sys.argv[1]).close()
except duckdb.IOException:
    print("busy")
else:
    print("free")
"""


def _seen_from_another_process(path: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", TRY_LOCK, path], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_held_open_keeps_the_duckdb_file_open_between_transactions(duck: Warehouse) -> None:
    path = duck.engine.url.database
    assert path is not None

    with duck.held_open():
        assert not duck.is_duplicate("201", "ab" * 32)  # work goes on through other connections
        held = _seen_from_another_process(path)
    released = _seen_from_another_process(path)

    assert (held, released) == ("busy", "free")


def test_errors_are_warehouse_errors(duck: Warehouse) -> None:
    with duck.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE ops.submissions"))

    with pytest.raises(WarehouseError, match="rolled back") as raised:
        duck.is_duplicate("201", "ab" * 32)

    assert raised.value.__context__ is None
