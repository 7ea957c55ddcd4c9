"""DuckDB: the rotated warehouse is built in `<warehouse>.rotating` next to the warehouse file,
then `os.replace`d over it while this process holds the old file's lock. The swap refuses if
the file is in use (the sensor, the daemon and the UI must be stopped) or if a file was
processed while the new one was being built."""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from pathlib import Path

import duckdb
import sqlalchemy as sa

from ingest.rotation.errors import RotationError, RotationRefused
from ingest.warehouse import Warehouse

ROTATING_SUFFIX = ".rotating"


def duckdb_path(url: str) -> Path | None:
    """The file of a DuckDB warehouse URL (None for another database or an in-memory one)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "duckdb" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser().resolve()


def audit_fingerprint(warehouse: Warehouse) -> tuple[int, datetime | None]:
    """Changes whenever a file is processed: the audit's row count and latest processing."""
    table = warehouse.table("ops", "submissions")
    query = sa.select(sa.func.count(), sa.func.max(table.c.processed_at))
    with warehouse.engine.connect() as conn:
        count, latest = conn.execute(query).one()
    return int(count), latest


def remove_database_file(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def rotating_path(old_path: Path | None) -> Path:
    """`<warehouse>.rotating`, where the new warehouse is built (any leftover removed)."""
    if old_path is None:
        raise RotationError("no DuckDB file to rotate")
    path = old_path.with_name(old_path.name + ROTATING_SUFFIX)
    remove_database_file(path)  # a leftover of an interrupted rotation
    return path


def swap_in(old_path: Path, new_path: Path, expected: tuple[int, datetime | None]) -> None:
    """Replace the warehouse file by the verified new one; on any failure the new file goes and
    the old one stays. `expected`: the old file's `audit_fingerprint` when the rebuild began."""
    try:
        _checkpoint(new_path)
        _swap_duckdb(old_path, new_path, expected)
    except BaseException:
        remove_database_file(new_path)
        raise


def _checkpoint(path: Path) -> None:
    """Fold any write-ahead log into the file: only the file itself is moved by the swap."""
    connection = duckdb.connect(str(path))
    try:
        connection.execute("CHECKPOINT")
    finally:
        connection.close()
    if path.with_name(path.name + ".wal").exists():
        raise RotationError("the rebuilt warehouse could not be checkpointed; nothing changed")


def _swap_duckdb(old_path: Path, new_path: Path, expected: tuple[int, datetime | None]) -> None:
    """Replace the warehouse file by the new one while holding the old file's lock."""
    try:
        lock = duckdb.connect(str(old_path))
    except duckdb.Error:
        raise RotationRefused(
            "the warehouse file is in use by another process: stop the sensor, the daemon and "
            "the UI, then rotate again"
        ) from None
    try:
        count, latest = lock.execute(
            "SELECT count(*), max(processed_at) FROM ops.submissions"
        ).fetchone() or (0, None)
        if (int(count), latest) != expected:
            raise RotationRefused(
                "files were processed while the new warehouse was being built: rotate again "
                "with the sensor and the daemon stopped"
            )
        lock.execute("CHECKPOINT")
        os.replace(new_path, old_path)
    finally:
        lock.close()
