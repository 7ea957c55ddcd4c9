"""The warehouse's layout: its schemas, tables and views, and the DDL that creates them.

- `clean.<dataset>`: each LA's current return per dataset (the latest received accepted one),
  a view of `history` through `ops.current_returns`;
- `history.<dataset>`: every accepted return, by submission;
- `ops.quarantine_<dataset>`, `ops.issues`: rejected rows (already pseudonymised) and the
  row/column/rule of every issue;
- `ops.submissions` (the audit table), `ops.taken_files`, `ops.current_returns`,
  `ops.withdrawn`, `ops.retention_log`; `trial.allocation`; `analysis.<dataset>` views with
  the arm joined in.

Timestamps are stored as UTC in `TIMESTAMP` columns without a zone (the same on every
dialect); the API takes and returns timezone-aware datetimes.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import polars as pl
import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateColumn
from sqlalchemy.sql.compiler import DDLCompiler

from schemas.contract import Kind, Treatment
from schemas.datasets import DATASETS
from schemas.outcome import ROW_NUMBER
from schemas.submission import clean_column_types

SCHEMAS = ("clean", "history", "ops", "trial", "analysis")
WITHDRAWALS = "withdrawals"
PERSON_TOKEN = "person_token"  # noqa: S105 (a column name)
FAMILY_TOKEN = "family_token"  # noqa: S105 (a column name)
RULES_COLUMN = "rules"
META_COLUMNS = ("la_code", "submission_id", "key_id", ROW_NUMBER)

# "held": accepted into history, but a blocking check kept the earlier return current until
# a person releases it (the contract's "flagged for a person to look at").
Status = Literal["accepted", "held", "rejected", "duplicate"]
STATUSES: tuple[str, ...] = get_args(Status)

_SCHEMA_SUFFIX = re.compile(r"[a-z0-9_]*")


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


# --- arguments and stored values ------------------------------------------------------------


def check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset; expected one of {', '.join(DATASETS)}")
    return dataset


def to_stored_time(moment: datetime) -> datetime:
    """UTC without a zone, as stored. Naive datetimes are refused: their zone is a guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).replace(tzinfo=None)


def from_stored_time(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)


# --- the tables -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
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
    taken_files: sa.Table

    def table(self, schema: str, name: str) -> sa.Table:
        """One of the tables or `clean` views (plain schema names)."""
        if schema == "clean" and name in self.clean:
            return self.clean[name]
        key = f"{schema}.{name}"
        if key not in self.metadata.tables:
            raise KeyError(key)
        return self.metadata.tables[key]


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
    # delete; a B-tree's per-row upkeep slowed a large COPY (docs/PERFORMANCE.md).
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
            # HMAC-SHA-256 under the landing key (null: recorded before it was keyed).
            sa.Column("content_hmac", sa.String()),
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
        # Which inbox file (by keyed fingerprint) each receipt came from, written with the
        # receipt's audit rows: a file still in the inbox after its outcome was recorded (the
        # process died before removing it) is then removed, not taken a second time.
        "taken_files": sa.Table(
            "taken_files",
            metadata,
            sa.Column("la_code", sa.String(), nullable=False),
            sa.Column("fingerprint", sa.String(), nullable=False),
            sa.Column("receipt_id", sa.String(), nullable=False),
            sa.UniqueConstraint("la_code", "fingerprint"),
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
def build_layout(*, with_indexes: bool) -> Layout:
    """The warehouse's tables. Indexes only where they help deletes (not DuckDB's zone maps).

    Built once per process (every `Warehouse` shares it; nothing changes it afterwards)."""
    metadata = sa.MetaData()
    stored = {name: dataset_column_types(name) for name in DATASETS}

    def index(*columns: str) -> tuple[str, ...]:
        return columns if with_indexes else ()

    # `clean.<dataset>` is a view of the LA's current return in `history` (see
    # `_clean_view_ddl`): described here for queries, never created as a table.
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
    return Layout(
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
        taken_files=ops["taken_files"],
    )


# --- schema names ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaNames:
    """The names the layout's schemas have in the database: each plus `suffix` (e.g.
    `__rotating`: `clean__rotating`, ...), for a second warehouse in the same database."""

    suffix: str = ""

    def __post_init__(self) -> None:
        if not _SCHEMA_SUFFIX.fullmatch(self.suffix):
            raise ValueError("a schema suffix is lower-case letters, digits and underscores")

    @property
    def translate_map(self) -> dict[str, str] | None:
        """The engine's `schema_translate_map` (None: the names are the layout's own)."""
        return {s: s + self.suffix for s in SCHEMAS} if self.suffix else None

    def __call__(self, schema: str) -> str:
        """The name schema `schema` of the layout has in the database."""
        return schema + self.suffix if self.suffix and schema in SCHEMAS else schema


# --- creating the layout --------------------------------------------------------------------


def schema_complete(conn: sa.Connection, layout: Layout, names: SchemaNames) -> bool:
    """Every table and view of the layout is there (one catalogue query, no DDL)."""
    tables = layout.metadata.sorted_tables
    expected = {(names(t.schema or ""), t.name, "BASE TABLE") for t in tables}
    for schema in ("clean", "analysis"):
        expected |= {(names(schema), dataset, "VIEW") for dataset in DATASETS}
    found = sa.text(
        "SELECT table_schema, table_name, table_type FROM information_schema.tables "
        "WHERE table_schema IN :schemas"
    ).bindparams(sa.bindparam("schemas", expanding=True))
    schemas = sorted({schema for schema, _, _ in expected})
    present = {tuple(row) for row in conn.execute(found, {"schemas": schemas})}
    return expected <= present and not has_plain_file_hashes(conn, names)


def create_layout(conn: sa.Connection, layout: Layout, names: SchemaNames) -> None:
    """Create every schema, table and view of the layout that is missing."""
    if conn.dialect.name == "postgresql":
        # Two processes creating the same schema at once would otherwise collide.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('trial-ingest ddl'))"))
    for schema in SCHEMAS:
        conn.execute(sa.schema.CreateSchema(names(schema), if_not_exists=True))
    layout.metadata.create_all(conn, checkfirst=True)
    drop_plain_file_hashes(conn, names)
    _drop_clean_tables(conn, names)
    for dataset in DATASETS:
        conn.execute(sa.text(_clean_view_ddl(conn, layout, names, dataset)))
        conn.execute(sa.text(_analysis_view_ddl(conn, layout, names, dataset)))


def has_plain_file_hashes(conn: sa.Connection, names: SchemaNames) -> bool:
    """`ops.submissions` still has the `sha256` column of a warehouse made before file
    fingerprints were keyed."""
    return _has_column(conn, names("ops"), "submissions", "sha256")


def drop_plain_file_hashes(conn: sa.Connection, names: SchemaNames) -> None:
    """Replace the plain SHA-256 column with `content_hmac`, null for the rows already there.

    A plain hash of a small file is its content, and it cannot be keyed without the file.
    The values are overwritten before the column goes, as PostgreSQL keeps a dropped column's
    values in its rows (`Warehouse.create_schema` then rewrites the table).
    """
    if not has_plain_file_hashes(conn, names):
        return
    table = conn.dialect.identifier_preparer.format_table(
        sa.table("submissions", schema=names("ops"))
    )
    conn.execute(sa.text(f"ALTER TABLE {table} ALTER COLUMN sha256 DROP NOT NULL"))
    conn.execute(sa.text(f"UPDATE {table} SET sha256 = NULL"))  # noqa: S608 (quoted identifier)
    conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN sha256"))
    if not _has_column(conn, names("ops"), "submissions", "content_hmac"):
        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN content_hmac VARCHAR"))


def _has_column(conn: sa.Connection, schema: str, table: str, column: str) -> bool:
    found = sa.text(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = :schema "
        "AND table_name = :table AND column_name = :column"
    )
    params = {"schema": schema, "table": table, "column": column}
    return conn.execute(found, params).first() is not None


def _drop_clean_tables(conn: sa.Connection, names: SchemaNames) -> None:
    """A warehouse made before `clean` became views kept copies of the current rows in
    tables; the same rows are in `history`, so the tables go and the views take over."""
    found = sa.text(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = :schema AND table_type = 'BASE TABLE'"
    )
    schema = names("clean")
    for (name,) in conn.execute(found, {"schema": schema}).all():
        if name in DATASETS:
            quoted = conn.dialect.identifier_preparer.format_table(sa.table(name, schema=schema))
            conn.execute(sa.text(f"DROP TABLE {quoted} CASCADE"))


def _clean_view_ddl(conn: sa.Connection, layout: Layout, names: SchemaNames, dataset: str) -> str:
    """Each LA's current return of `dataset`: its rows in `history`, found through
    `ops.current_returns`. Replacing a return is then one row of `current_returns`."""
    history = layout.history[dataset].alias("h")
    current = layout.current_returns.alias("r")
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
    return _view_ddl(conn, names, "clean", dataset, query)


def _analysis_view_ddl(
    conn: sa.Connection, layout: Layout, names: SchemaNames, dataset: str
) -> str:
    clean = layout.clean[dataset].alias("c")
    allocation = layout.allocation.alias("a")
    query = sa.select(
        clean.c.la_code,
        allocation.c.la_name,
        allocation.c.arm,
        *(column for column in clean.c if column.name != "la_code"),
    ).select_from(clean.outerjoin(allocation, allocation.c.la_code == clean.c.la_code))
    return _view_ddl(conn, names, "analysis", dataset, query)


def _view_ddl(
    conn: sa.Connection, names: SchemaNames, schema: str, name: str, query: sa.Select[Any]
) -> str:
    view = conn.dialect.identifier_preparer.format_table(sa.table(name, schema=names(schema)))
    # Compiled here, not by `conn`, so the schema map and the literals are in the text.
    options: dict[str, Any] = {"compile_kwargs": {"literal_binds": True}}
    if names.translate_map is not None:
        options |= {"schema_translate_map": names.translate_map, "render_schema_translate": True}
    return f"CREATE OR REPLACE VIEW {view} AS {query.compile(dialect=conn.dialect, **options)}"
