"""PostgreSQL: the rotated warehouse is built in the same database under suffixed schema names
(`clean__rotating`, ...), then switched over in one transaction that locks every table of the
warehouse in use against writes, re-checks that no file was processed meanwhile, renames each
schema to `<name>__retired_<UTC time>` and each rotating schema to its plain name, and drops
the retired schemas (unless `keep_old`). Views bind to tables, not names, so the rotating
`analysis` views follow their tables."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ingest.rotation.errors import RotationError, RotationRefused
from ingest.rotation.verify import data_tables
from ingest.warehouse import SCHEMAS, Warehouse, describe_database_error

ROTATING_SCHEMA_SUFFIX = "__rotating"  # PostgreSQL: the new warehouse's schemas while built
RETIRED_SCHEMA_INFIX = "__retired_"  # PostgreSQL: `<schema>__retired_<UTC time>` (--keep-old)
# PostgreSQL: how long the switch-over waits for running writers before it refuses.
SWAP_LOCK_TIMEOUT = "30s"
_ROTATION_LOCK = "trial-ingest rotate-key"  # advisory lock: one rotation at a time
_DDL_LOCK = "trial-ingest ddl"  # the advisory lock `Warehouse.create_schema` takes


def _rotating_schemas() -> tuple[str, ...]:
    return tuple(schema + ROTATING_SCHEMA_SUFFIX for schema in SCHEMAS)


@contextlib.contextmanager
def one_rotation_at_a_time(warehouse: Warehouse) -> Iterator[None]:
    """A session advisory lock for the whole rotation: a second one refuses at once."""
    name = {"name": _ROTATION_LOCK}
    with warehouse.engine.connect() as conn:
        locked = conn.execute(sa.text("SELECT pg_try_advisory_lock(hashtext(:name))"), name)
        got = bool(locked.scalar_one())
        conn.commit()
        if not got:
            raise RotationRefused("another key rotation of this warehouse is running")
        try:
            yield
        finally:
            # If this fails the connection is gone, and the session's lock with it.
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                conn.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:name))"), name)
                conn.commit()


def postgres_state(conn: sa.Connection, warehouse: Warehouse) -> tuple[Any, ...]:
    """Changes whenever a file is processed or loaded: the audit fingerprint (as for DuckDB),
    every data table's row count and the current returns (ids and times only)."""
    submissions = warehouse.table("ops", "submissions")
    count, latest = conn.execute(
        sa.select(sa.func.count(), sa.func.max(submissions.c.processed_at))
    ).one()
    tables = [table for _, _, table in data_tables(warehouse)]
    tables.append(warehouse.table("ops", "withdrawn"))
    rows = tuple(
        int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
        for table in tables
    )
    current = warehouse.table("ops", "current_returns")
    query = sa.select(current).order_by(current.c.la_code, current.c.dataset)
    returns = tuple(tuple(row) for row in conn.execute(query))
    return (int(count), latest), rows, returns


def drop_rotating_schemas(warehouse: Warehouse) -> None:
    """Drop the `__rotating` schemas (a leftover of an interrupted rotation, or a failed one)."""
    preparer = warehouse.engine.dialect.identifier_preparer
    failure = ""
    try:
        with warehouse.engine.begin() as conn:
            for name in _rotating_schemas():
                conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {preparer.quote(name)} CASCADE"))
            return
    except sa.exc.SQLAlchemyError as exc:
        failure = describe_database_error(exc)
    raise RotationError(f"the rotating schemas could not be dropped: {failure}")


def switch_over(
    old: Warehouse, before: tuple[Any, ...], *, stamp: datetime, keep_old: bool
) -> tuple[str, ...]:
    """In one transaction: lock, re-check, rename old -> retired and rotating -> plain, drop
    the retired schemas (unless `keep_old`). Returns the retired schemas' names."""
    failure: sa.exc.SQLAlchemyError | None = None
    try:
        with old.engine.begin() as conn:
            return _switch_in_transaction(conn, old, before, stamp=stamp, keep_old=keep_old)
    except sa.exc.SQLAlchemyError as exc:
        failure = exc
    original = failure.orig if isinstance(failure, sa.exc.DBAPIError) else failure
    if getattr(original, "sqlstate", None) in ("55P03", "40P01"):  # lock timeout, deadlock
        raise RotationRefused(
            "the warehouse stayed busy (another process kept writing to it): stop the sensor, "
            "the daemon and the UI, then rotate again"
        )
    raise RotationError(
        f"the switch-over failed and was rolled back: {describe_database_error(failure)}"
    )


def _switch_in_transaction(
    conn: sa.Connection, old: Warehouse, before: tuple[Any, ...], *, stamp: datetime, keep_old: bool
) -> tuple[str, ...]:
    quote = conn.dialect.identifier_preparer.quote
    conn.execute(sa.text(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'"))
    # No `create_schema` of another process runs meanwhile.
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": _DDL_LOCK})
    tables = (
        conn.execute(
            sa.text(
                "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                "WHERE schemaname = ANY(:schemas) ORDER BY 1"
            ),
            {"schemas": list(SCHEMAS)},
        )
        .scalars()
        .all()
    )
    # EXCLUSIVE: readers carry on; a writer holding any table is waited for, new ones wait.
    conn.execute(sa.text(f"LOCK TABLE {', '.join(tables)} IN EXCLUSIVE MODE"))
    if postgres_state(conn, old) != before:
        raise RotationRefused(
            "files were processed while the new warehouse was being built: rotate again "
            "with the sensor and the daemon stopped"
        )
    outside = _views_outside(conn)
    if outside:
        raise RotationRefused(
            f"{outside} view(s) outside the warehouse's schemas read its tables: the switch-over "
            "would drop them with the old schemas (or leave them reading the old tokens); drop "
            "them, rotate, then create them again"
        )
    retired = _retired_names(conn, stamp)
    for schema, retired_name in zip(SCHEMAS, retired, strict=True):
        conn.execute(sa.text(f"ALTER SCHEMA {quote(schema)} RENAME TO {quote(retired_name)}"))
    for schema, rotating in zip(SCHEMAS, _rotating_schemas(), strict=True):
        conn.execute(sa.text(f"ALTER SCHEMA {quote(rotating)} RENAME TO {quote(schema)}"))
    if not keep_old:
        for retired_name in retired:
            conn.execute(sa.text(f"DROP SCHEMA {quote(retired_name)} CASCADE"))
    return retired


def _views_outside(conn: sa.Connection) -> int:
    """How many views in other schemas read a table or view of the warehouse's schemas."""
    query = sa.text(
        "SELECT count(DISTINCT v.oid) FROM pg_rewrite r "
        "JOIN pg_class v ON v.oid = r.ev_class "
        "JOIN pg_depend d ON d.objid = r.oid AND d.classid = 'pg_rewrite'::regclass "
        "AND d.refclassid = 'pg_class'::regclass "
        "JOIN pg_class t ON t.oid = d.refobjid "
        "JOIN pg_namespace tn ON tn.oid = t.relnamespace "
        "JOIN pg_namespace vn ON vn.oid = v.relnamespace "
        "WHERE tn.nspname = ANY(:schemas) AND vn.nspname <> ALL(:schemas)"
    )
    return int(conn.execute(query, {"schemas": list(SCHEMAS)}).scalar_one())


def _retired_names(conn: sa.Connection, stamp: datetime) -> tuple[str, ...]:
    """`<schema>__retired_<UTC time>`, with `_2`, `_3`... if a kept set has that time."""
    existing = set(conn.execute(sa.text("SELECT nspname FROM pg_namespace")).scalars())
    base = RETIRED_SCHEMA_INFIX + stamp.astimezone(UTC).strftime("%Y%m%d_%H%M%S")
    for attempt in range(1, 1000):
        tail = base if attempt == 1 else f"{base}_{attempt}"
        names = tuple(schema + tail for schema in SCHEMAS)
        if not existing & set(names):
            return names
    raise RotationError("too many retired schema sets with the same time: drop some")
