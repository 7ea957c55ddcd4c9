"""The Parquet spool of a chunked DuckDB load: its rows on disk until one statement inserts them.

DuckDB keeps rows that a transaction appends piece by piece in the process's memory, but
streams a single `INSERT ... SELECT` to its file as it goes; so a chunked load writes its
chunks to Parquet files in a folder beside the database file (`<file>.loading-<random>`), and
one transaction then inserts each target's files with one statement. The folder is removed
whatever happens, and a later load removes the folders of loads that were killed.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import sqlalchemy as sa

from ingest.warehouse.bulk import driver_connection, qualified_table
from ingest.warehouse.errors import WarehouseLoadError

# The spool folders are named `<database file>.loading-<random>`.
SPOOL_MARK = ".loading-"
_SPOOLS_IN_USE: set[Path] = set()  # spool folders of this process's loads still running


@contextmanager
def open_spool(database: str | None) -> Iterator[ParquetSpool]:
    """A new spool folder beside the DuckDB file `database` (the system's temporary folder for
    an in-memory database), removed afterwards; first, any a killed load left there."""
    parent: Path | None = None
    stem = "warehouse"
    if database and database != ":memory:":
        path = Path(database).expanduser().resolve()
        parent, stem = path.parent, path.name
        _remove_abandoned_spools(parent, stem)
    folder = Path(tempfile.mkdtemp(prefix=stem + SPOOL_MARK, dir=parent))
    _SPOOLS_IN_USE.add(folder)
    try:
        # An in-memory database cannot write what it inserts out to a file, so its memory
        # is never limited.
        yield ParquetSpool(folder, limit_memory=parent is not None)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        _SPOOLS_IN_USE.discard(folder)


class ParquetSpool:
    """A chunked DuckDB load's rows, in Parquet files until one transaction inserts them.

    One `INSERT ... SELECT` from the files writes full row groups to the database file as it
    reads them, where appending the same rows chunk by chunk in one transaction keeps them all
    in memory (docs/PERFORMANCE.md). The files hold
    what the warehouse tables will hold, nothing more: pseudonymised, checked rows.
    """

    def __init__(self, folder: Path, *, limit_memory: bool) -> None:
        self.folder = folder
        self.limit_memory = limit_memory  # see `spool_insert_settings`
        self._files: dict[str, list[Path]] = {}
        self._columns: dict[str, list[str]] = {}

    def write(self, target: str, frame: pl.DataFrame) -> None:
        if frame.is_empty():
            return
        if self._columns.setdefault(target, frame.columns) != frame.columns:
            raise WarehouseLoadError(f"the chunks for {target} do not have the same columns")
        files = self._files.setdefault(target, [])
        path = self.folder / f"{target}-{len(files):06d}.parquet"
        frame.write_parquet(path, compression="uncompressed", statistics=False)
        files.append(path)

    def insert_into(self, conn: sa.Connection, table: sa.Table, target: str) -> None:
        """Every file spooled for `target` into `table`, in one statement."""
        files = self._files.get(target)
        if not files:
            return
        preparer = conn.dialect.identifier_preparer
        columns = ", ".join(preparer.quote(c) for c in self._columns[target])
        driver_connection(conn).execute(
            f"INSERT INTO {qualified_table(conn, table)} ({columns}) "  # noqa: S608 (quoted identifiers)
            f"SELECT {columns} FROM read_parquet(?)",
            [[str(f) for f in files]],
        )


# DuckDB's memory while a spool is inserted into a database file. Left at its default (80% of
# the machine's memory), DuckDB keeps every block it writes; with this limit it
# keeps far less, in the same time (docs/PERFORMANCE.md).
_SPOOL_INSERT_MEMORY = "256MB"


@contextmanager
def spool_insert_settings(conn: sa.Connection, limit_memory: bool) -> Iterator[None]:
    """DuckDB settings for inserting a spool, reset once the transaction inside has ended,
    committed or rolled back (a failed statement leaves the transaction refusing every other
    until then). A setting the operator changed from DuckDB's default is left as it is."""
    raw = driver_connection(conn)
    # Rows in any order (a table has none): both cores then write row groups at once, about a
    # third faster at 1M rows.
    wanted = {"preserve_insertion_order": "false"}
    if limit_memory:
        wanted["memory_limit"] = _SPOOL_INSERT_MEMORY
    settings = {
        name: value
        for name, value in wanted.items()
        if _duckdb_setting(raw, name) == _duckdb_default_setting(name)
    }
    try:
        for name, value in settings.items():
            # SET takes no parameters; names and values are this module's own.
            raw.execute(f"SET {name} = '{value}'")
        yield
    except BaseException:
        # The error being raised is the one to report, not a failure to reset after it.
        with contextlib.suppress(duckdb.Error):
            _reset_duckdb_settings(raw, settings)
        raise
    _reset_duckdb_settings(raw, settings)


def _duckdb_setting(raw: Any, name: str) -> str:
    row = raw.execute("SELECT current_setting(?)", [name]).fetchone()
    return str(row[0])


@functools.cache
def _duckdb_default_setting(name: str) -> str:
    with duckdb.connect() as fresh:
        return _duckdb_setting(fresh, name)


def _reset_duckdb_settings(raw: Any, settings: dict[str, str]) -> None:
    for name in settings:
        raw.execute(f"RESET {name}")


def remove_abandoned_spools(database: str | None) -> None:
    """`_remove_abandoned_spools` beside the DuckDB file `database`, for the start of a run:
    call it only while this process holds the file open."""
    if database and database != ":memory:":
        path = Path(database).expanduser().resolve()
        _remove_abandoned_spools(path.parent, path.name)


def _remove_abandoned_spools(parent: Path, stem: str) -> None:
    """Remove the spool folders of loads that were killed before they could remove them.

    Safe on DuckDB: while this process has the file open no other process can, and this
    process's own loads mark their folders as in use.
    """
    for folder in parent.glob(f"{glob.escape(stem)}{SPOOL_MARK}*"):
        if folder.is_dir() and folder not in _SPOOLS_IN_USE:
            shutil.rmtree(folder, ignore_errors=True)
