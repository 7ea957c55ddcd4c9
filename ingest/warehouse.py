"""The warehouse: pseudonymised returns, their history, quarantine and the audit trail.

SQLAlchemy handles the URL, the DDL and the transactions; rows go in through each database's
native bulk path (`BulkInserter`, chosen by dialect): DuckDB scans an Arrow table registered on
the same connection, PostgreSQL streams CSV through `COPY`. Both run inside the SQLAlchemy
transaction, so a load is all or nothing.

Layout (see `create_schema`):

- `clean.<dataset>`: each LA's current return per dataset (the latest received accepted one);
- `history.<dataset>`: every accepted return, by submission;
- `ops.quarantine_<dataset>`, `ops.issues`: rejected rows (already pseudonymised) and the
  row/column/rule of every issue;
- `ops.submissions` (the audit table), `ops.current_returns`, `ops.withdrawn`,
  `ops.retention_log`; `trial.allocation`; `analysis.<dataset>` views with the arm joined in.

Nothing here raises with a value from a frame: database errors are replaced by their class name
(their messages can quote values) and raised without the original as context.

Timestamps are stored as UTC in `TIMESTAMP` columns without a zone (the same on every
dialect); the API takes and returns timezone-aware datetimes.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import glob
import io
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, get_args

import duckdb
import polars as pl
import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import NullPool, StaticPool
from sqlalchemy.schema import CreateColumn
from sqlalchemy.sql.compiler import DDLCompiler

from schemas.chunked import TableChunk, TableEnd
from schemas.codes import ARMS
from schemas.contract import Kind, Treatment
from schemas.datasets import DATASETS
from schemas.outcome import ISSUE_SCHEMA, ROW_NUMBER, FileIssue, TableOutcome
from schemas.submission import clean_column_types

SCHEMAS = ("clean", "history", "ops", "trial", "analysis")
WITHDRAWALS = "withdrawals"
PERSON_TOKEN = "person_token"  # noqa: S105 (a column name)
FAMILY_TOKEN = "family_token"  # noqa: S105 (a column name)
RULES_COLUMN = "rules"
META_COLUMNS = ("la_code", "submission_id", "key_id", ROW_NUMBER)
ALLOCATION_HEADER = ("la_code", "la_name", "arm", "randomised_on")

# "held": accepted into history, but a blocking check kept the earlier return current until
# a person releases it (the contract's "flagged for a person to look at").
Status = Literal["accepted", "held", "rejected", "duplicate"]
STATUSES: tuple[str, ...] = get_args(Status)

_DUCKDB_LOCK_WAIT_SECONDS = 60.0
# A chunked load on DuckDB spools its rows to Parquet files in a folder beside the database
# file, named `<file>.loading-<random>` (see `Warehouse.load_return_chunks`).
SPOOL_MARK = ".loading-"
_SPOOLS_IN_USE: set[Path] = set()  # spool folders of this process's loads still running
_LA_CODE = re.compile(r"[0-9]{3}")
_SCHEMA_SUFFIX = re.compile(r"[a-z0-9_]*")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATABASE_ERRORS = (sa.exc.SQLAlchemyError, duckdb.Error, psycopg.Error)

T = TypeVar("T")
_Withdrawn = tuple[list[str], list[str]]  # the LA's withdrawn person and family tokens


class WarehouseError(RuntimeError):
    """A warehouse operation failed (and was rolled back). Never carries a value from data."""


class WarehouseLoadError(WarehouseError):
    """A return could not be loaded: frames not as expected, or the database refused them."""


class AllocationError(ValueError):
    """The allocation file is not valid. Names the line and the column, never the value."""


# --- results and records --------------------------------------------------------------------


@dataclass(frozen=True)
class LoadResult:
    la_code: str
    dataset: str
    submission_id: str
    became_current: bool  # the return now holds the LA's rows in clean.<dataset>
    # Why it did not: "not_accepted" (file-level error, or no clean rows: an empty return never
    # wipes data), "not_replacing" (the caller held it back) or "newer_return".
    skipped_reason: str | None
    current_submission_id: str | None  # the LA's current return for the dataset after the load
    rows_loaded: int  # rows in history from this return (withdrawn people and families left out)
    rows_withdrawn: int  # accepted rows left out because the person or family has withdrawn
    rows_quarantined: int
    issues_recorded: int


@dataclass(frozen=True)
class ChunkTotals:
    """What a return loaded chunk by chunk added up to, for deciding whether it replaces the
    LA's current rows (the blocking checks) once its last chunk is in."""

    rows_received: int
    rows_clean: int
    rows_rejected: int
    newest_service_date: date | None  # the latest service date in its clean rows


@dataclass(frozen=True)
class SubmissionRecord:
    """One row of the audit table: one received file and one dataset in it (None: the file)."""

    receipt_id: str
    submission_id: str
    la_code: str
    dataset: str | None
    status: Status
    reason: str | None  # rule names, ';'-joined
    rows_received: int
    rows_loaded: int
    rows_rejected: int
    received_at: datetime
    processed_at: datetime
    sha256: str
    size_bytes: int
    key_id: str


@dataclass(frozen=True)
class PreviousReturn:
    """The LA's current return for a dataset, for the "count fell by more than half" check."""

    submission_id: str
    received_at: datetime
    rows_loaded: int
    newest_record_date: date | None  # the latest service date in it (None: no service dates)


@dataclass(frozen=True)
class CurrentReturn:
    la_code: str
    dataset: str
    submission_id: str
    received_at: datetime


@dataclass(frozen=True)
class AllocationRow:
    la_code: str
    la_name: str
    arm: str
    randomised_on: date


# --- the contract's columns -----------------------------------------------------------------


def dataset_column_types(dataset: str) -> dict[str, pl.DataType]:
    """Stored column names and polars dtypes of a dataset's clean rows (without ROW_NUMBER)."""
    types = clean_column_types(DATASETS[dataset])
    return {name: dtype for name, dtype in types.items() if name != ROW_NUMBER}


def token_columns(dataset: str) -> frozenset[str]:
    """The dataset's stored token columns."""
    fields = DATASETS[dataset].stored_fields
    return frozenset(f.stored_name for f in fields if f.treatment is Treatment.TOKEN)


def service_date_columns(dataset: str) -> list[str]:
    """The dataset's service-event dates (kept exactly); their maximum is a return's newest date."""
    return [
        f.stored_name
        for f in DATASETS[dataset].fields
        if f.kind is Kind.DATE and f.treatment is Treatment.KEEP
    ]


def duckdb_url(path: Path) -> str:
    """The default warehouse URL: a DuckDB file."""
    return f"duckdb:///{path.expanduser().resolve()}"


def _sql_type(dtype: pl.DataType) -> sa.types.TypeEngine[Any]:
    types: list[tuple[type[pl.DataType], sa.types.TypeEngine[Any]]] = [
        (pl.String, sa.String()),
        (pl.Date, sa.Date()),
        (pl.Boolean, sa.Boolean()),
        (pl.Int64, sa.BigInteger()),
        (pl.Float64, sa.Double()),
    ]
    for polars_type, sql_type in types:
        if dtype == polars_type:
            return sql_type
    raise TypeError(f"no warehouse column type for {dtype}")


# --- the tables -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    metadata: sa.MetaData
    stored: dict[str, dict[str, pl.DataType]]
    clean: dict[str, sa.Table]
    history: dict[str, sa.Table]
    quarantine: dict[str, sa.Table]
    issues: sa.Table
    submissions: sa.Table
    current_returns: sa.Table
    withdrawn: sa.Table
    allocation: sa.Table
    retention_log: sa.Table


def _meta_columns(*, with_rules: bool = False) -> list[sa.Column[Any]]:
    columns: list[sa.Column[Any]] = [
        sa.Column("la_code", sa.String(), nullable=False),
        sa.Column("submission_id", sa.String(), nullable=False),
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column(ROW_NUMBER, sa.BigInteger(), nullable=False),
    ]
    if with_rules:
        columns.append(sa.Column(RULES_COLUMN, sa.String(), nullable=False))
    return columns


def _data_table(
    metadata: sa.MetaData,
    schema: str,
    name: str,
    stored: dict[str, pl.DataType],
    *,
    with_rules: bool = False,
    index_on: tuple[str, ...] = (),
    uncompressed: frozenset[str] = frozenset(),
) -> sa.Table:
    clashes = set(stored) & {*META_COLUMNS, RULES_COLUMN}
    if clashes:
        raise ValueError(f"dataset columns clash with warehouse columns: {sorted(clashes)}")
    columns = [
        sa.Column(c, _sql_type(t), info={_UNCOMPRESSED: True} if c in uncompressed else {})
        for c, t in stored.items()
    ]
    # BRIN: a load appends its submission's rows together, so block ranges find them for a
    # delete; a B-tree's per-row upkeep cost ~1.5 s of a 1M-row COPY (docs/PERFORMANCE.md).
    name_of_index = f"ix_{schema}_{name}_{'_'.join(index_on)}"
    indexes = [sa.Index(name_of_index, *index_on, postgresql_using="brin")] if index_on else []
    return sa.Table(
        name, metadata, *_meta_columns(with_rules=with_rules), *columns, *indexes, schema=schema
    )


# A column's `info` key: DuckDB stores the column uncompressed (see `_duckdb_column`).
_UNCOMPRESSED = "duckdb_uncompressed"


@compiles(CreateColumn, "duckdb")
def _duckdb_column(element: CreateColumn, compiler: DDLCompiler, **kw: Any) -> str | None:
    """DuckDB's column definition, with `USING COMPRESSION uncompressed` where asked for.

    Token columns are random hex: DuckDB's string compression (dictionary, then FSST) halves
    them at best, and it was about 40% of inserting a million rows (docs/PERFORMANCE.md).
    """
    text: str | None = compiler.visit_create_column(element, **kw)  # type: ignore[no-untyped-call]
    column: sa.Column[Any] = element.element
    if text is None or not column.info.get(_UNCOMPRESSED):
        return text
    name_and_type = (
        f"{compiler.preparer.format_column(column)} {compiler.type_compiler.process(column.type)}"
    )
    if not text.startswith(name_and_type):
        raise RuntimeError(f"unexpected DuckDB column definition for {column.name}")
    return f"{name_and_type} USING COMPRESSION uncompressed{text[len(name_and_type) :]}"


def _ops_tables(metadata: sa.MetaData) -> dict[str, sa.Table]:
    status_check = "status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")"
    return {
        "issues": sa.Table(
            "issues",
            metadata,
            sa.Column("submission_id", sa.String(), nullable=False),
            sa.Column("la_code", sa.String(), nullable=False),
            sa.Column("dataset", sa.String()),  # null: an issue with the whole file
            sa.Column(ROW_NUMBER, sa.BigInteger()),  # null: an issue with the file or dataset
            sa.Column("column", sa.String()),
            sa.Column("rule", sa.String(), nullable=False),
            sa.Column("severity", sa.String(), nullable=False),
            schema="ops",
        ),
        "submissions": sa.Table(
            "submissions",
            metadata,
            sa.Column("receipt_id", sa.String(), nullable=False),
            sa.Column("submission_id", sa.String(), nullable=False),
            sa.Column("la_code", sa.String(), nullable=False),
            sa.Column("dataset", sa.String()),  # null: a row about the whole file
            sa.Column("status", sa.String(), nullable=False),
            sa.Column("reason", sa.String()),
            sa.Column("rows_received", sa.BigInteger(), nullable=False),
            sa.Column("rows_loaded", sa.BigInteger(), nullable=False),
            sa.Column("rows_rejected", sa.BigInteger(), nullable=False),
            sa.Column("received_at", sa.DateTime(), nullable=False),
            sa.Column("processed_at", sa.DateTime(), nullable=False),
            sa.Column("sha256", sa.String(), nullable=False),
            sa.Column("size_bytes", sa.BigInteger(), nullable=False),
            sa.Column("key_id", sa.String(), nullable=False),
            sa.UniqueConstraint("receipt_id", "dataset"),
            sa.CheckConstraint(status_check, name="ck_submissions_status"),
            schema="ops",
        ),
        "current_returns": sa.Table(
            "current_returns",
            metadata,
            sa.Column("la_code", sa.String(), primary_key=True),
            sa.Column("dataset", sa.String(), primary_key=True),
            sa.Column("submission_id", sa.String(), nullable=False),
            sa.Column("received_at", sa.DateTime(), nullable=False),
            schema="ops",
        ),
        "withdrawn": sa.Table(
            "withdrawn",
            metadata,
            sa.Column("la_code", sa.String(), nullable=False),
            sa.Column(PERSON_TOKEN, sa.String()),
            sa.Column(FAMILY_TOKEN, sa.String()),
            sa.Column("withdrawal_date", sa.Date()),
            sa.Column("submission_id", sa.String(), nullable=False),
            schema="ops",
        ),
        "retention_log": sa.Table(
            "retention_log",
            metadata,
            sa.Column("la_code", sa.String(), nullable=False),
            sa.Column("submission_id", sa.String(), nullable=False),
            sa.Column("received_at", sa.DateTime(), nullable=False),
            sa.Column("deleted_at", sa.DateTime(), nullable=False),
            sa.UniqueConstraint("la_code", "submission_id"),
            schema="ops",
        ),
        "allocation": sa.Table(
            "allocation",
            metadata,
            sa.Column("la_code", sa.String(), primary_key=True),
            sa.Column("la_name", sa.String(), nullable=False),
            sa.Column("arm", sa.String(), nullable=False),
            sa.Column("randomised_on", sa.Date(), nullable=False),
            schema="trial",
        ),
    }


@functools.cache
def _build_layout(*, with_indexes: bool) -> _Layout:
    """The warehouse's tables. Indexes only where they help deletes (not DuckDB's zone maps).

    Built once per process (every `Warehouse` shares it; nothing changes it afterwards)."""
    metadata = sa.MetaData()
    stored = {name: dataset_column_types(name) for name in DATASETS}

    def index(*columns: str) -> tuple[str, ...]:
        return columns if with_indexes else ()

    # `clean.<dataset>` is a view of the LA's current return in `history` (see
    # `Warehouse._clean_view_ddl`): described here for queries, never created as a table.
    views = sa.MetaData()
    clean = {name: _data_table(views, "clean", name, cols) for name, cols in stored.items()}
    history = {
        name: _data_table(
            metadata,
            "history",
            name,
            cols,
            index_on=index("submission_id"),
            uncompressed=token_columns(name),
        )
        for name, cols in stored.items()
    }
    quarantine = {
        name: _data_table(
            metadata,
            "ops",
            f"quarantine_{name}",
            cols,
            with_rules=True,
            index_on=index("submission_id"),
            uncompressed=token_columns(name),
        )
        for name, cols in stored.items()
    }
    ops = _ops_tables(metadata)
    return _Layout(
        metadata=metadata,
        stored=stored,
        clean=clean,
        history=history,
        quarantine=quarantine,
        issues=ops["issues"],
        submissions=ops["submissions"],
        current_returns=ops["current_returns"],
        withdrawn=ops["withdrawn"],
        allocation=ops["allocation"],
        retention_log=ops["retention_log"],
    )


# --- bulk rows ------------------------------------------------------------------------------


def _driver_connection(conn: sa.Connection) -> Any:
    """The database driver's own connection, inside the SQLAlchemy transaction."""
    raw = conn.connection.driver_connection
    if raw is None:
        raise WarehouseError("the warehouse connection is closed")
    return raw


class BulkInserter(Protocol):
    """Appends a frame (columns named as the table's) to a table, inside `conn`'s transaction."""

    def insert(self, conn: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> None: ...


class DuckDBArrowInserter:
    """DuckDB scans the frame's Arrow buffers directly: ~1 s for a million rows."""

    def insert(self, conn: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> None:
        if frame.is_empty():
            return
        preparer = conn.dialect.identifier_preparer
        columns = ", ".join(preparer.quote(c) for c in frame.columns)
        view = f"incoming_{uuid.uuid4().hex}"
        raw = _driver_connection(conn)
        raw.register(view, frame.to_arrow(compat_level=pl.CompatLevel.newest()))
        try:
            raw.execute(
                f"INSERT INTO {_qualified_table(conn, table)} ({columns}) "  # noqa: S608 (quoted identifiers)
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
        raw = _driver_connection(conn)
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for chunk in frame.iter_slices(self.chunk_rows):
                buffer = io.BytesIO()
                chunk.write_csv(buffer, include_header=False)
                copy.write(buffer.getvalue())


def _qualified_table(conn: sa.Connection, table: sa.Table) -> str:
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


# --- frames ---------------------------------------------------------------------------------


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


def _without_withdrawn(
    frame: pl.DataFrame, persons: list[str], families: list[str]
) -> pl.DataFrame:
    keep = pl.lit(True)
    for column, tokens in ((PERSON_TOKEN, persons), (FAMILY_TOKEN, families)):
        if tokens and column in frame.columns:
            listed = pl.col(column).is_in(tokens).fill_null(False)
            keep = keep & ~listed
    return frame.filter(keep)


# --- small helpers --------------------------------------------------------------------------


def _check_la_code(la_code: str) -> str:
    if not _LA_CODE.fullmatch(la_code):
        raise ValueError("an LA code must be three digits")
    return la_code


def _check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset; expected one of {', '.join(DATASETS)}")
    return dataset


def _to_stored_time(moment: datetime) -> datetime:
    """UTC without a zone, as stored. Naive datetimes are refused: their zone is a guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).replace(tzinfo=None)


def _from_stored_time(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)


def _describe_database_error(exc: BaseException) -> str:
    """The error's class (and SQLSTATE): its message may quote values, so it is not used."""
    original = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    state = getattr(original, "sqlstate", None)
    name = type(original).__name__
    return f"{name} (SQLSTATE {state})" if isinstance(state, str) else name


def _is_duckdb_lock_conflict(exc: BaseException) -> bool:
    original = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    return isinstance(original, duckdb.IOException) and "lock" in str(original).lower()


def _create_engine(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "duckdb":
        return sa.create_engine(parsed, pool_pre_ping=True)
    if parsed.database in (None, "", ":memory:"):
        engine = sa.create_engine(parsed, poolclass=StaticPool)
    else:
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # A DuckDB file has one writer process at a time: open it per transaction (no pool),
        # so Dagster's run processes take turns instead of one holding the lock for life.
        engine = sa.create_engine(parsed, poolclass=NullPool)
    sa.event.listen(engine, "connect", _without_progress_bar)
    return engine


def _without_progress_bar(dbapi_connection: Any, _record: Any) -> None:
    """DuckDB would otherwise draw a progress bar on the terminal for a statement over 2 s."""
    dbapi_connection.execute("SET enable_progress_bar = false")


# --- allocation file ------------------------------------------------------------------------


def read_allocation(path: Path) -> list[AllocationRow]:
    """The trial allocation CSV (`la_code,la_name,arm,randomised_on`), strictly checked."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != ALLOCATION_HEADER:
            raise AllocationError(
                "allocation file line 1: the header must be " + ",".join(ALLOCATION_HEADER)
            )
        rows: list[AllocationRow] = []
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            rows.append(_allocation_row(record, reader.line_num))
    if not rows:
        raise AllocationError("allocation file: it holds no LA")
    _check_unique_codes(rows)
    return rows


def _allocation_row(record: list[str], line: int) -> AllocationRow:
    if len(record) != len(ALLOCATION_HEADER):
        raise AllocationError(
            f"allocation file line {line}: expected {len(ALLOCATION_HEADER)} fields, "
            f"found {len(record)}"
        )
    la_code, la_name, arm, randomised_on = (cell.strip() for cell in record)
    if not _LA_CODE.fullmatch(la_code):
        raise AllocationError(f"allocation file line {line}: la_code is not a three-digit code")
    if not la_name:
        raise AllocationError(f"allocation file line {line}: la_name is blank")
    if arm not in ARMS:
        raise AllocationError(f"allocation file line {line}: arm is not one of {', '.join(ARMS)}")
    randomised = _iso_date(randomised_on)
    if randomised is None:
        raise AllocationError(
            f"allocation file line {line}: randomised_on is not a date in YYYY-MM-DD form"
        )
    return AllocationRow(la_code=la_code, la_name=la_name, arm=arm, randomised_on=randomised)


def _iso_date(text: str) -> date | None:
    if not _ISO_DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _check_unique_codes(rows: list[AllocationRow]) -> None:
    seen: set[str] = set()
    for number, row in enumerate(rows, start=1):
        if row.la_code in seen:
            raise AllocationError(f"allocation file: LA number {number} repeats an la_code")
        seen.add(row.la_code)


# --- the warehouse --------------------------------------------------------------------------


class Warehouse:
    """The trial's warehouse at a SQLAlchemy URL (default: a DuckDB file, see `duckdb_url`)."""

    def __init__(
        self, url: str, *, bulk_inserter: BulkInserter | None = None, schema_suffix: str = ""
    ) -> None:
        """`schema_suffix` (e.g. `__rotating`): every schema of the layout is used under its
        name plus the suffix (`clean__rotating`, ...), for building a second warehouse in the
        same database (key rotation). `table()` still takes and returns the plain names: the
        engine's `schema_translate_map` maps them, and the raw SQL here maps them itself."""
        if not _SCHEMA_SUFFIX.fullmatch(schema_suffix):
            raise ValueError("a schema suffix is lower-case letters, digits and underscores")
        self._schema_map = {s: s + schema_suffix for s in SCHEMAS} if schema_suffix else None
        engine = _create_engine(url)
        if self._schema_map is not None:
            engine = engine.execution_options(schema_translate_map=self._schema_map)
        self._engine = engine
        self._dialect = self._engine.dialect.name
        self._inserter = bulk_inserter or bulk_inserter_for(self._dialect)
        self._layout = _build_layout(with_indexes=self._dialect == "postgresql")
        self._schema_created = False

    def __repr__(self) -> str:
        return f"Warehouse({self._engine.url.render_as_string(hide_password=True)!r})"

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    @property
    def dialect(self) -> str:
        return self._dialect

    def dispose(self) -> None:
        self._engine.dispose()

    def schema_name(self, schema: str) -> str:
        """The name schema `schema` of the layout has in the database (suffix applied)."""
        return schema if self._schema_map is None else self._schema_map.get(schema, schema)

    # --- schema ---

    def create_schema(self) -> None:
        """Create every schema, table and view that is missing (safe to run at every start).

        Done once per `Warehouse` object; later calls return at once.
        """
        if not self._schema_created:
            if not self._run("looking for the warehouse schema", self._schema_complete):
                self._run("creating the warehouse schema", self._create_schema)
            self._schema_created = True

    def _schema_complete(self, conn: sa.Connection) -> bool:
        """Every table and view of the layout is there (one catalogue query, no DDL)."""
        tables = self._layout.metadata.sorted_tables
        expected = {(self.schema_name(t.schema or ""), t.name, "BASE TABLE") for t in tables}
        for schema in ("clean", "analysis"):
            expected |= {(self.schema_name(schema), dataset, "VIEW") for dataset in DATASETS}
        found = sa.text(
            "SELECT table_schema, table_name, table_type FROM information_schema.tables "
            "WHERE table_schema IN :schemas"
        ).bindparams(sa.bindparam("schemas", expanding=True))
        schemas = sorted({schema for schema, _, _ in expected})
        present = {tuple(row) for row in conn.execute(found, {"schemas": schemas})}
        return expected <= present

    @contextmanager
    def held_open(self) -> Iterator[None]:
        """For a DuckDB file: hold one connection open while a batch of work runs.

        Each transaction otherwise opens the file and, closing the last connection to it,
        checkpoints it; a connection held open makes the others cheap. The file stays locked
        for other processes meanwhile (they wait, see `_connect`). Nothing to do elsewhere.
        """
        if self._dialect != "duckdb":
            yield
            return
        with self._connect():
            yield

    def _create_schema(self, conn: sa.Connection) -> None:
        if self._dialect == "postgresql":
            # Two processes creating the same schema at once would otherwise collide.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('trial-ingest ddl'))"))
        for schema in SCHEMAS:
            conn.execute(sa.schema.CreateSchema(self.schema_name(schema), if_not_exists=True))
        self._layout.metadata.create_all(conn, checkfirst=True)
        self._drop_clean_tables(conn)
        for dataset in DATASETS:
            conn.execute(sa.text(self._clean_view_ddl(conn, dataset)))
            conn.execute(sa.text(self._analysis_view_ddl(conn, dataset)))

    def _drop_clean_tables(self, conn: sa.Connection) -> None:
        """A warehouse made before `clean` became views kept copies of the current rows in
        tables; the same rows are in `history`, so the tables go and the views take over."""
        found = sa.text(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = :schema AND table_type = 'BASE TABLE'"
        )
        schema = self.schema_name("clean")
        for (name,) in conn.execute(found, {"schema": schema}).all():
            if name in DATASETS:
                quoted = conn.dialect.identifier_preparer.format_table(
                    sa.table(name, schema=schema)
                )
                conn.execute(sa.text(f"DROP TABLE {quoted} CASCADE"))

    def _clean_view_ddl(self, conn: sa.Connection, dataset: str) -> str:
        """Each LA's current return of `dataset`: its rows in `history`, found through
        `ops.current_returns`. Replacing a return is then one row of `current_returns`."""
        history = self._layout.history[dataset].alias("h")
        current = self._layout.current_returns.alias("r")
        query = sa.select(*history.c).select_from(
            history.join(
                current,
                sa.and_(
                    current.c.la_code == history.c.la_code,
                    current.c.dataset == sa.literal(dataset),
                    current.c.submission_id == history.c.submission_id,
                ),
            )
        )
        return self._view_ddl(conn, "clean", dataset, query)

    def _analysis_view_ddl(self, conn: sa.Connection, dataset: str) -> str:
        clean = self._layout.clean[dataset].alias("c")
        allocation = self._layout.allocation.alias("a")
        query = sa.select(
            clean.c.la_code,
            allocation.c.la_name,
            allocation.c.arm,
            *(column for column in clean.c if column.name != "la_code"),
        ).select_from(clean.outerjoin(allocation, allocation.c.la_code == clean.c.la_code))
        return self._view_ddl(conn, "analysis", dataset, query)

    def _view_ddl(self, conn: sa.Connection, schema: str, name: str, query: sa.Select[Any]) -> str:
        view = conn.dialect.identifier_preparer.format_table(
            sa.table(name, schema=self.schema_name(schema))
        )
        # Compiled here, not by `conn`, so the schema map and the literals are in the text.
        options: dict[str, Any] = {"compile_kwargs": {"literal_binds": True}}
        if self._schema_map is not None:
            options |= {"schema_translate_map": self._schema_map, "render_schema_translate": True}
        return f"CREATE OR REPLACE VIEW {view} AS {query.compile(dialect=conn.dialect, **options)}"

    def table(self, schema: str, name: str) -> sa.Table:
        """One of the warehouse's tables or `clean` views, for queries (e.g.
        `table("clean", "people")`)."""
        if schema == "clean" and name in self._layout.clean:
            return self._layout.clean[name]
        key = f"{schema}.{name}"
        if key not in self._layout.metadata.tables:
            raise KeyError(key)
        return self._layout.metadata.tables[key]

    # --- loading a return ---

    def load_return(
        self,
        *,
        la_code: str,
        dataset: str,
        submission_id: str,
        key_id: str,
        received_at: datetime,
        table: TableOutcome,
        replace: bool = True,
    ) -> LoadResult:
        """Load one dataset of one submission, in one transaction.

        History, quarantine and issues are replaced by submission (so a re-run changes
        nothing). The LA's rows in `clean.<dataset>` are replaced only when the return is
        accepted and is the latest received (ties broken by submission id), and `replace` is
        true (a blocking check can load history without replacing the current return).
        Rows of people and families the LA has withdrawn are left out everywhere; a
        `withdrawals` return also removes them from every clean, history and quarantine table.
        """
        _check_la_code(la_code)
        _check_dataset(dataset)
        if table.dataset != dataset:
            raise WarehouseLoadError("the table outcome is for another dataset")
        load = _ReturnLoad(
            la_code=la_code,
            dataset=dataset,
            submission_id=submission_id,
            key_id=key_id,
            received_at=_to_stored_time(received_at),
            accepted=table.accepted and not table.clean.is_empty(),
            replace=replace,
            clean=_conformed_rows(table.clean, dataset, "clean rows"),
            rejected=_conformed_rows(table.rejected, dataset, "rejected rows", rules=True),
            issues=_issue_rows(table, la_code, submission_id, dataset),
        )
        return self._run(
            f"loading {dataset} for LA {la_code}",
            lambda conn: self._load(conn, load),
            error=WarehouseLoadError,
        )

    def load_return_chunks(
        self,
        *,
        la_code: str,
        dataset: str,
        submission_id: str,
        key_id: str,
        received_at: datetime,
        chunks: Iterable[TableChunk],
        replace: bool | Callable[[ChunkTotals], bool] = True,
    ) -> LoadResult:
        """`load_return` for a table checked a slice at a time (`schemas.chunked`).

        Memory holds one chunk at a time, and the return still goes in all or nothing: on
        PostgreSQL every chunk is `COPY`ed inside the one transaction. DuckDB keeps rows that
        a transaction appends piece by piece in the process's memory, but streams a single
        `INSERT ... SELECT` to its file as it goes; so the chunks are first spooled to Parquet
        files (`_ParquetSpool`, beside the database file) and one transaction then inserts
        each target's files with one statement. The rows are written to the database once,
        and the spool is removed whatever happens. An exception from the chunks (say
        `WholeFileNeeded`) leaves nothing behind. Once the table's last chunk (`end`) is in,
        `replace` (or its answer for the totals, e.g. the blocking checks) decides, as in
        `load_return`, whether this submission's rows become the LA's current rows.
        A `withdrawals` return (always small) is collected and loaded by `load_return`.
        """
        _check_la_code(la_code)
        _check_dataset(dataset)
        if dataset == WITHDRAWALS:
            table = _collected_table(chunks, dataset)
            accepted = table.accepted and not table.clean.is_empty()
            totals = ChunkTotals(
                table.rows_received, table.clean.height, table.rejected.height, None
            )
            return self.load_return(
                la_code=la_code,
                dataset=dataset,
                submission_id=submission_id,
                key_id=key_id,
                received_at=received_at,
                table=table,
                replace=replace(totals) if callable(replace) and accepted else bool(replace),
            )
        load = _ReturnLoad(
            la_code=la_code,
            dataset=dataset,
            submission_id=submission_id,
            key_id=key_id,
            received_at=_to_stored_time(received_at),
            accepted=False,
            replace=False,
            clean=pl.DataFrame(),
            rejected=pl.DataFrame(),
            issues=pl.DataFrame(),
        )
        what = f"loading {dataset} for LA {la_code}"
        if self._dialect == "duckdb":
            return self._load_spooled(what, load, chunks, replace)
        return self._run(
            what,
            lambda conn: self._load_chunks_in_transaction(conn, load, chunks, replace),
            error=WarehouseLoadError,
        )

    def _load_chunks_in_transaction(
        self,
        conn: sa.Connection,
        load: _ReturnLoad,
        chunks: Iterable[TableChunk],
        replace: bool | Callable[[ChunkTotals], bool],
    ) -> LoadResult:
        self._clear_submission(conn, load)
        targets = self._final_targets(load.dataset)
        withdrawn = self._withdrawn_tokens(conn, load.la_code)

        def insert(target: str, frame: pl.DataFrame) -> None:
            self._inserter.insert(conn, targets[target], frame)

        counts = _write_chunks(insert, load, chunks, withdrawn)
        return self._finish_chunks(conn, load, counts, replace)

    def _load_spooled(
        self,
        what: str,
        load: _ReturnLoad,
        chunks: Iterable[TableChunk],
        replace: bool | Callable[[ChunkTotals], bool],
    ) -> LoadResult:
        """The DuckDB way: chunks to a Parquet spool, then one transaction inserts it."""
        failure = ""
        try:
            # The connection stays open throughout: DuckDB's file lock keeps other processes
            # (and their clearing of abandoned spools) out until the spool is gone.
            with self._connect() as conn, self._spool() as spool:
                with conn.begin():
                    withdrawn = self._withdrawn_tokens(conn, load.la_code)
                counts = _write_chunks(spool.write, load, chunks, withdrawn)
                with _spool_insert_settings(conn, spool.limit_memory), conn.begin():
                    self._clear_submission(conn, load)
                    for target, table in self._final_targets(load.dataset).items():
                        spool.insert_into(conn, table, target)
                    return self._finish_chunks(conn, load, counts, replace)
        except _DATABASE_ERRORS as exc:
            failure = _describe_database_error(exc)
        raise WarehouseLoadError(f"{what} failed and was rolled back: {failure}")

    def _final_targets(self, dataset: str) -> dict[str, sa.Table]:
        """Where a chunked load's rejected rows, clean rows and issues go, by target name."""
        layout = self._layout
        return {
            "quarantine": layout.quarantine[dataset],
            "history": layout.history[dataset],
            "issues": layout.issues,
        }

    @contextmanager
    def _spool(self) -> Iterator[_ParquetSpool]:
        """A new spool folder beside the DuckDB file (the system's temporary folder for an
        in-memory database), removed afterwards; first, any a killed load left there."""
        database = self._engine.url.database
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
            yield _ParquetSpool(folder, limit_memory=parent is not None)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            _SPOOLS_IN_USE.discard(folder)

    def _clear_submission(self, conn: sa.Connection, load: _ReturnLoad) -> None:
        """Remove what an earlier load of this submission left (a re-run changes nothing)."""
        layout = self._layout
        for target in (layout.quarantine[load.dataset], layout.history[load.dataset]):
            self._replace_by_submission(conn, target, load, pl.DataFrame())
        self._replace_issues(conn, _without_issues(load))

    def _finish_chunks(
        self,
        conn: sa.Connection,
        load: _ReturnLoad,
        counts: _ChunkCounts,
        replace: bool | Callable[[ChunkTotals], bool],
    ) -> LoadResult:
        """With every chunk's rows in place: the table's issues, then history and the
        current rows by the same rules as `load_return`."""
        end = counts.end
        assert end is not None
        history = self._layout.history[load.dataset]
        self._inserter.insert(conn, self._layout.issues, _table_issue_rows(end.file_issues, load))
        accepted = end.accepted and end.rows_clean > 0
        if not accepted:
            self._replace_by_submission(conn, history, load, pl.DataFrame())
        totals = ChunkTotals(
            end.rows_received, end.rows_clean, end.rows_rejected, counts.newest_service_date
        )
        wanted = replace(totals) if callable(replace) and accepted else bool(replace)
        decided = _replace_load_flags(load, accepted=accepted, replace=wanted)
        skipped = self._skip_reason(conn, decided)
        if skipped is None:
            self._mark_current(conn, decided)
        return LoadResult(
            la_code=load.la_code,
            dataset=load.dataset,
            submission_id=load.submission_id,
            became_current=skipped is None,
            skipped_reason=skipped,
            current_submission_id=self._current_submission(conn, load.la_code, load.dataset),
            rows_loaded=counts.kept if accepted else 0,
            rows_withdrawn=counts.clean - counts.kept if accepted else 0,
            rows_quarantined=counts.quarantined,
            issues_recorded=counts.issues + len(end.file_issues),
        )

    def _load(self, conn: sa.Connection, load: _ReturnLoad) -> LoadResult:
        persons, families = self._withdrawn_tokens(conn, load.la_code)
        clean, rejected = load.clean, load.rejected
        if load.dataset != WITHDRAWALS:
            clean = _without_withdrawn(clean, persons, families)
            rejected = _without_withdrawn(rejected, persons, families)
        clean = _with_meta(clean, load.la_code, load.submission_id, load.key_id)
        rejected = _with_meta(rejected, load.la_code, load.submission_id, load.key_id)

        self._replace_by_submission(conn, self._layout.quarantine[load.dataset], load, rejected)
        self._replace_issues(conn, load)
        skipped = self._skip_reason(conn, load)
        if load.accepted:
            self._replace_by_submission(conn, self._layout.history[load.dataset], load, clean)
            if load.dataset == WITHDRAWALS:
                self._record_withdrawals(conn, load, clean)
        if skipped is None:
            self._mark_current(conn, load)
        return LoadResult(
            la_code=load.la_code,
            dataset=load.dataset,
            submission_id=load.submission_id,
            became_current=skipped is None,
            skipped_reason=skipped,
            current_submission_id=self._current_submission(conn, load.la_code, load.dataset),
            rows_loaded=clean.height if load.accepted else 0,
            rows_withdrawn=load.clean.height - clean.height if load.accepted else 0,
            rows_quarantined=rejected.height,
            issues_recorded=load.issues.height,
        )

    def _skip_reason(self, conn: sa.Connection, load: _ReturnLoad) -> str | None:
        if not load.accepted:
            return "not_accepted"
        if not load.replace:
            return "not_replacing"
        current = self._current_row(conn, load.la_code, load.dataset)
        if current is not None and (current.received_at, current.submission_id) > (
            load.received_at,
            load.submission_id,
        ):
            return "newer_return"
        return None

    def _replace_by_submission(
        self, conn: sa.Connection, target: sa.Table, load: _ReturnLoad, rows: pl.DataFrame
    ) -> None:
        conn.execute(
            sa.delete(target).where(
                target.c.la_code == load.la_code, target.c.submission_id == load.submission_id
            )
        )
        self._inserter.insert(conn, target, rows)

    def _replace_issues(self, conn: sa.Connection, load: _ReturnLoad) -> None:
        issues = self._layout.issues
        conn.execute(
            sa.delete(issues).where(
                issues.c.submission_id == load.submission_id,
                issues.c.la_code == load.la_code,
                issues.c.dataset == load.dataset,
            )
        )
        self._inserter.insert(conn, issues, load.issues)

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

    # --- withdrawals ---

    def _withdrawn_tokens(self, conn: sa.Connection, la_code: str) -> _Withdrawn:
        withdrawn = self._layout.withdrawn
        rows = conn.execute(
            sa.select(withdrawn.c[PERSON_TOKEN], withdrawn.c[FAMILY_TOKEN]).where(
                withdrawn.c.la_code == la_code
            )
        ).all()
        persons = sorted({r[0] for r in rows if r[0] is not None})
        families = sorted({r[1] for r in rows if r[1] is not None})
        return persons, families

    def _record_withdrawals(
        self, conn: sa.Connection, load: _ReturnLoad, rows: pl.DataFrame
    ) -> None:
        """Log the return's withdrawals, then remove those people and families everywhere.

        Applied whatever the return's received time: a withdrawal is never undone.
        """
        withdrawn = self._layout.withdrawn
        conn.execute(
            sa.delete(withdrawn).where(
                withdrawn.c.la_code == load.la_code,
                withdrawn.c.submission_id == load.submission_id,
            )
        )
        log = rows.select("la_code", PERSON_TOKEN, FAMILY_TOKEN, "withdrawal_date", "submission_id")
        self._inserter.insert(conn, withdrawn, log)
        for dataset, stored in self._layout.stored.items():
            if dataset == WITHDRAWALS:
                continue
            for tables in (self._layout.history, self._layout.quarantine):
                self._purge_withdrawn(conn, tables[dataset], stored, load.la_code)

    def _purge_withdrawn(
        self, conn: sa.Connection, target: sa.Table, stored: dict[str, pl.DataType], la_code: str
    ) -> None:
        withdrawn = self._layout.withdrawn
        matches = [
            target.c[column].in_(
                sa.select(withdrawn.c[column]).where(
                    withdrawn.c.la_code == la_code, withdrawn.c[column].is_not(None)
                )
            )
            for column in (PERSON_TOKEN, FAMILY_TOKEN)
            if column in stored
        ]
        if matches:
            conn.execute(sa.delete(target).where(target.c.la_code == la_code, sa.or_(*matches)))

    # --- file-level issues ---

    def record_file_issues(
        self, *, la_code: str, submission_id: str, issues: Sequence[FileIssue]
    ) -> None:
        """Record issues with a whole file (dataset null), replacing the submission's earlier."""
        _check_la_code(la_code)
        frame = pl.DataFrame(
            {
                "submission_id": [submission_id] * len(issues),
                "la_code": [la_code] * len(issues),
                "dataset": [None] * len(issues),
                ROW_NUMBER: [None] * len(issues),
                "column": [None] * len(issues),
                "rule": [i.rule for i in issues],
                "severity": [str(i.severity) for i in issues],
            },
            schema=_ISSUE_TABLE_SCHEMA,
        )

        def replace(conn: sa.Connection) -> None:
            table = self._layout.issues
            conn.execute(
                sa.delete(table).where(
                    table.c.submission_id == submission_id,
                    table.c.la_code == la_code,
                    table.c.dataset.is_(None),
                )
            )
            self._inserter.insert(conn, table, frame)

        self._run(f"recording file issues for LA {la_code}", replace)

    # --- the retention log ---

    def record_retention(
        self, *, la_code: str, submission_id: str, received_at: datetime, deleted_at: datetime
    ) -> None:
        """Log that a landed raw file was deleted (a second deletion keeps the first record)."""
        values = {
            "la_code": _check_la_code(la_code),
            "submission_id": submission_id,
            "received_at": _to_stored_time(received_at),
            "deleted_at": _to_stored_time(deleted_at),
        }
        table = self._layout.retention_log

        def record(conn: sa.Connection) -> None:
            logged = conn.execute(
                sa.select(sa.literal(1)).where(
                    table.c.la_code == la_code, table.c.submission_id == submission_id
                )
            ).first()
            if logged is None:
                conn.execute(sa.insert(table), [values])

        self._run(f"recording a retention deletion for LA {la_code}", record)

    def retention_log(self) -> list[dict[str, Any]]:
        """Every logged deletion (la_code, submission_id, received_at, deleted_at), oldest first."""
        table = self._layout.retention_log
        query = sa.select(table).order_by(
            table.c.deleted_at, table.c.la_code, table.c.submission_id
        )
        rows = self._run(
            "reading the retention log", lambda conn: conn.execute(query).mappings().all()
        )
        return [
            {
                **row,
                "received_at": _from_stored_time(row["received_at"]),
                "deleted_at": _from_stored_time(row["deleted_at"]),
            }
            for row in rows
        ]

    # --- the audit table ---

    def record_submission(self, rows: Sequence[SubmissionRecord]) -> None:
        """Insert or replace audit rows by (receipt_id, dataset), in one transaction."""
        values = [_submission_values(row) for row in rows]
        if values:
            self._run("recording submissions", lambda conn: self._upsert_submissions(conn, values))

    def _upsert_submissions(self, conn: sa.Connection, values: list[dict[str, Any]]) -> None:
        table = self._layout.submissions
        for value in values:
            conn.execute(
                sa.delete(table).where(
                    table.c.receipt_id == value["receipt_id"],
                    table.c.dataset.is_not_distinct_from(value["dataset"]),
                )
            )
        conn.execute(sa.insert(table), values)

    def submissions(self, la_code: str | None = None) -> list[SubmissionRecord]:
        """Audit rows (of one LA, or all), oldest received first."""
        table = self._layout.submissions
        query = sa.select(table).order_by(
            table.c.received_at, table.c.receipt_id, table.c.dataset.nulls_first()
        )
        if la_code is not None:
            query = query.where(table.c.la_code == _check_la_code(la_code))
        rows = self._run("reading submissions", lambda conn: conn.execute(query).mappings().all())
        return [_submission_record(row) for row in rows]

    def is_duplicate(self, la_code: str, sha256: str) -> bool:
        """Was a byte-identical file from this LA already processed (accepted, held or
        rejected)?"""
        table = self._layout.submissions
        query = (
            sa.select(sa.literal(1))
            .where(
                table.c.la_code == _check_la_code(la_code),
                table.c.sha256 == sha256,
                table.c.status.in_(("accepted", "held", "rejected")),
            )
            .limit(1)
        )
        found = self._run("checking for a duplicate", lambda conn: conn.execute(query).first())
        return found is not None

    # --- current returns ---

    def previous_accepted(self, la_code: str, dataset: str) -> PreviousReturn | None:
        """The LA's current return for the dataset: its rows and newest service date."""
        _check_la_code(la_code)
        _check_dataset(dataset)
        return self._run(
            "reading the previous return",
            lambda conn: self._previous_accepted(conn, la_code, dataset),
        )

    def _previous_accepted(
        self, conn: sa.Connection, la_code: str, dataset: str
    ) -> PreviousReturn | None:
        current = self._current_row(conn, la_code, dataset)
        if current is None:
            return None
        history = self._layout.history[dataset]
        dates = [sa.func.max(history.c[c]) for c in service_date_columns(dataset)]
        row = conn.execute(
            sa.select(sa.func.count(), *dates).where(
                history.c.la_code == la_code, history.c.submission_id == current.submission_id
            )
        ).one()
        newest = max((d for d in row[1:] if d is not None), default=None)
        return PreviousReturn(
            submission_id=current.submission_id,
            received_at=_from_stored_time(current.received_at),
            rows_loaded=int(row[0]),
            newest_record_date=newest,
        )

    def current_returns(self) -> list[CurrentReturn]:
        """The current return of every LA and dataset."""
        table = self._layout.current_returns
        query = sa.select(table).order_by(table.c.la_code, table.c.dataset)
        rows = self._run("reading current returns", lambda conn: conn.execute(query).all())
        return [
            CurrentReturn(
                la_code=r.la_code,
                dataset=r.dataset,
                submission_id=r.submission_id,
                received_at=_from_stored_time(r.received_at),
            )
            for r in rows
        ]

    def _current_row(
        self, conn: sa.Connection, la_code: str, dataset: str
    ) -> sa.Row[Any, Any] | None:
        table = self._layout.current_returns
        return conn.execute(
            sa.select(table.c.submission_id, table.c.received_at).where(
                table.c.la_code == la_code, table.c.dataset == dataset
            )
        ).first()

    def _current_submission(self, conn: sa.Connection, la_code: str, dataset: str) -> str | None:
        row = self._current_row(conn, la_code, dataset)
        return None if row is None else str(row.submission_id)

    # --- allocation ---

    def load_allocation(self, path: Path) -> list[AllocationRow]:
        """Replace `trial.allocation` with the allocation file's rows, atomically."""
        rows = read_allocation(path)

        def replace(conn: sa.Connection) -> None:
            table = self._layout.allocation
            conn.execute(sa.delete(table))
            conn.execute(sa.insert(table), [vars(row) for row in rows])

        self._run("loading the allocation", replace)
        return rows

    def allocation(self) -> list[AllocationRow]:
        table = self._layout.allocation
        query = sa.select(table).order_by(table.c.la_code)
        rows = self._run("reading the allocation", lambda conn: conn.execute(query).all())
        return [
            AllocationRow(
                la_code=r.la_code, la_name=r.la_name, arm=r.arm, randomised_on=r.randomised_on
            )
            for r in rows
        ]

    # --- transactions ---

    def _run(
        self,
        what: str,
        work: Callable[[sa.Connection], T],
        *,
        error: type[WarehouseError] = WarehouseError,
    ) -> T:
        """`work` in one transaction; a database error rolls it back and becomes `error`.

        The new error is raised outside the `except` block so that it carries no context: the
        database's message may quote a value.
        """
        failure = ""
        try:
            with self._begin() as conn:
                return work(conn)
        except _DATABASE_ERRORS as exc:
            failure = _describe_database_error(exc)
        raise error(f"{what} failed and was rolled back: {failure}")

    @contextmanager
    def _begin(self) -> Iterator[sa.Connection]:
        with self._connect() as conn, conn.begin():
            yield conn

    def _connect(self) -> sa.Connection:
        """A connection; waits while another process holds a DuckDB file's lock."""
        deadline = time.monotonic() + _DUCKDB_LOCK_WAIT_SECONDS
        delay = 0.05
        while True:
            try:
                return self._engine.connect()
            except sa.exc.DBAPIError as exc:
                if not _is_duckdb_lock_conflict(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


@dataclass(frozen=True)
class _ReturnLoad:
    """One dataset of one submission, its frames checked against the warehouse's columns."""

    la_code: str
    dataset: str
    submission_id: str
    key_id: str
    received_at: datetime  # stored form: UTC, no zone
    accepted: bool
    replace: bool
    clean: pl.DataFrame
    rejected: pl.DataFrame
    issues: pl.DataFrame


_ISSUE_TABLE_SCHEMA: dict[str, pl.DataType] = {
    "submission_id": pl.String(),
    "la_code": pl.String(),
    "dataset": pl.String(),
    ROW_NUMBER: pl.Int64(),
    "column": pl.String(),
    "rule": pl.String(),
    "severity": pl.String(),
}


def _issue_rows(
    table: TableOutcome, la_code: str, submission_id: str, dataset: str
) -> pl.DataFrame:
    """The table's row issues and its dataset-level issues (row and column null)."""
    rows = _conform(table.issues, dict(ISSUE_SCHEMA), f"{dataset} issues")
    dataset_level = pl.DataFrame(
        {
            ROW_NUMBER: [None] * len(table.file_issues),
            "column": [None] * len(table.file_issues),
            "rule": [i.rule for i in table.file_issues],
            "severity": [str(i.severity) for i in table.file_issues],
        },
        schema=dict(ISSUE_SCHEMA),
    )
    return pl.concat([rows, dataset_level]).select(
        pl.lit(submission_id, pl.String()).alias("submission_id"),
        pl.lit(la_code, pl.String()).alias("la_code"),
        pl.lit(dataset, pl.String()).alias("dataset"),
        pl.all(),
    )


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
        self,
        chunk: TableChunk,
        clean: pl.DataFrame,
        kept: pl.DataFrame,
        quarantined: pl.DataFrame,
        dataset: str,
    ) -> None:
        self.clean += clean.height
        self.kept += kept.height
        self.quarantined += quarantined.height
        self.issues += chunk.issues.height
        columns = service_date_columns(dataset)
        if columns and not clean.is_empty():
            newest = clean.select(pl.max_horizontal(pl.col(columns).max())).item()
            if isinstance(newest, date) and (
                self.newest_service_date is None or newest > self.newest_service_date
            ):
                self.newest_service_date = newest


class _ParquetSpool:
    """A chunked DuckDB load's rows, in Parquet files until one transaction inserts them.

    One `INSERT ... SELECT` from the files writes full row groups to the database file as it
    reads them (1M rows: about +250 MB; 5M: +450 MB), where appending the same rows chunk by
    chunk in one transaction keeps them all in memory (docs/PERFORMANCE.md). The files hold
    what the warehouse tables will hold, nothing more: pseudonymised, checked rows.
    """

    def __init__(self, folder: Path, *, limit_memory: bool) -> None:
        self.folder = folder
        self.limit_memory = limit_memory  # see `_spool_insert_settings`
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
        _driver_connection(conn).execute(
            f"INSERT INTO {_qualified_table(conn, table)} ({columns}) "  # noqa: S608 (quoted identifiers)
            f"SELECT {columns} FROM read_parquet(?)",
            [[str(f) for f in files]],
        )


# DuckDB's memory while a spool is inserted into a database file. Left at its default (80% of
# the machine's memory), DuckDB keeps every block it writes: +460 MB at 1M rows, against
# +180 MB with this limit, in the same time (docs/PERFORMANCE.md).
_SPOOL_INSERT_MEMORY = "256MB"


@contextmanager
def _spool_insert_settings(conn: sa.Connection, limit_memory: bool) -> Iterator[None]:
    """DuckDB settings for inserting a spool, reset once the transaction inside has ended,
    committed or rolled back (a failed statement leaves the transaction refusing every other
    until then). A setting the operator changed from DuckDB's default is left as it is."""
    raw = _driver_connection(conn)
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


def _remove_abandoned_spools(parent: Path, stem: str) -> None:
    """Remove the spool folders of loads that were killed before they could remove them.

    Safe on DuckDB: while this process has the file open no other process can, and this
    process's own loads mark their folders as in use.
    """
    for folder in parent.glob(f"{glob.escape(stem)}{SPOOL_MARK}*"):
        if folder.is_dir() and folder not in _SPOOLS_IN_USE:
            shutil.rmtree(folder, ignore_errors=True)


def _write_chunks(
    write: Callable[[str, pl.DataFrame], None],
    load: _ReturnLoad,
    chunks: Iterable[TableChunk],
    withdrawn: _Withdrawn,
) -> _ChunkCounts:
    """Every chunk's rows to `write` (by `_final_targets` name); the counts, with `end`."""
    persons, families = withdrawn
    counts = _ChunkCounts()
    meta = (load.la_code, load.submission_id, load.key_id)
    for chunk in chunks:
        if chunk.dataset != load.dataset:
            raise WarehouseLoadError("a chunk of another dataset was given")
        clean = _conformed_rows(chunk.clean, load.dataset, "clean rows")
        rejected = _conformed_rows(chunk.rejected, load.dataset, "rejected rows", rules=True)
        kept = _without_withdrawn(clean, persons, families)
        quarantined = _without_withdrawn(rejected, persons, families)
        issues = _conform(chunk.issues, dict(ISSUE_SCHEMA), f"{load.dataset} issues")
        write("quarantine", _with_meta(quarantined, *meta))
        write("history", _with_meta(kept, *meta))
        write("issues", _issue_table_rows(issues, load))
        counts.add(chunk, clean, kept, quarantined, load.dataset)
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


def _without_issues(load: _ReturnLoad) -> _ReturnLoad:
    """`load` with no issues: `_replace_issues` then only deletes the submission's issues."""
    return _ReturnLoad(**{**vars(load), "issues": pl.DataFrame(schema=_ISSUE_TABLE_SCHEMA)})


def _replace_load_flags(load: _ReturnLoad, *, accepted: bool, replace: bool) -> _ReturnLoad:
    return _ReturnLoad(**{**vars(load), "accepted": accepted, "replace": replace})


def _issue_table_rows(issues: pl.DataFrame, load: _ReturnLoad) -> pl.DataFrame:
    return issues.select(
        pl.lit(load.submission_id, pl.String()).alias("submission_id"),
        pl.lit(load.la_code, pl.String()).alias("la_code"),
        pl.lit(load.dataset, pl.String()).alias("dataset"),
        pl.all(),
    )


def _table_issue_rows(issues: Sequence[FileIssue], load: _ReturnLoad) -> pl.DataFrame:
    rows = pl.DataFrame(
        {
            ROW_NUMBER: [None] * len(issues),
            "column": [None] * len(issues),
            "rule": [i.rule for i in issues],
            "severity": [str(i.severity) for i in issues],
        },
        schema=dict(ISSUE_SCHEMA),
    )
    return _issue_table_rows(rows, load)


def _collected_table(chunks: Iterable[TableChunk], dataset: str) -> TableOutcome:
    parts = list(chunks)
    end = parts[-1].end if parts else None
    if end is None or any(p.dataset != dataset for p in parts):
        raise WarehouseLoadError("the chunks are not one whole table of this dataset")
    return TableOutcome(
        dataset=dataset,
        source=parts[0].source,
        rows_received=end.rows_received,
        clean=pl.concat([p.clean for p in parts]),
        rejected=pl.concat([p.rejected for p in parts]),
        issues=pl.concat([p.issues for p in parts]),
        file_issues=list(end.file_issues),
    )


def _submission_values(row: SubmissionRecord) -> dict[str, Any]:
    _check_la_code(row.la_code)
    if row.dataset is not None:
        _check_dataset(row.dataset)
    if row.status not in STATUSES:
        raise ValueError(f"a submission status must be one of {', '.join(STATUSES)}")
    values = vars(row).copy()
    values["received_at"] = _to_stored_time(row.received_at)
    values["processed_at"] = _to_stored_time(row.processed_at)
    return values


def _submission_record(row: sa.RowMapping) -> SubmissionRecord:
    values = dict(row)
    values["received_at"] = _from_stored_time(values["received_at"])
    values["processed_at"] = _from_stored_time(values["processed_at"])
    return SubmissionRecord(**values)
