"""Rotating the pseudonymisation key: reprocess every retained raw file, then swap atomically.

The old key is never needed: raw files are re-read from the landing store (under the landing
key) and replayed, in the order they were received, through the pipeline's own code path
(`take_from_landing` + `process_received`) into a fresh warehouse under the new key. The new
warehouse is verified against the old one, then swapped in:

- DuckDB: built in `<warehouse>.rotating` next to the warehouse file, then `os.replace`d over
  it while this process holds the old file's lock (no other writer can be running: the
  sensor, the daemon and the UI must be stopped, and the swap refuses if the file is in use
  or changed while the new one was being built);
- PostgreSQL: built in the same database under suffixed schema names (`clean__rotating`, ...),
  verified, then switched over in one transaction that locks every table of the warehouse in
  use against writes, re-checks that no file was processed meanwhile, renames each schema to
  `<name>__retired_<UTC time>` and each rotating schema to its plain name, and drops the
  retired schemas (unless `keep_old`). Views bind to tables, not names, so the rotating
  `analysis` views follow their tables. Any failure before the commit leaves the warehouse in
  use untouched, and the rotating schemas are dropped;
- any database, when the operator names an empty one (`target_url`): built and verified
  there, and left for the operator to switch `TRIAL_WAREHOUSE_URL` over (no swap).

Decisions kept from the old warehouse: a return a person released past a blocking check is
released again; a held return is held again; withdrawals are replayed, so withdrawn people
stay removed. `ops.submissions` rows of files not replayed (duplicates, files lost to
retention) are carried over as they are, with the allocation and the retention log; a row in
`ops.key_rotations` records the rotation (old key ids, new key id, time, counts).

A return whose raw file retention has deleted cannot be re-keyed: rotation refuses, listing
LA x dataset, unless `allow_loss` (its rows are then dropped from the new warehouse).
Nothing here prints or raises with a key, a token or a value from a file.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import sqlalchemy as sa

from ingest.pipeline import Received, Services, process_received, take_from_landing
from ingest.storage.landing import LandedFile, Landing
from ingest.warehouse import (
    SCHEMAS,
    SubmissionRecord,
    Warehouse,
    duckdb_url,
)
from ingest.warehouse import describe_database_error as _describe_database_error
from pseudonymise.tokens import Tokeniser
from schemas.datasets import DATASETS

ROTATING_SUFFIX = ".rotating"
ROTATING_SCHEMA_SUFFIX = "__rotating"  # PostgreSQL: the new warehouse's schemas while built
RETIRED_SCHEMA_INFIX = "__retired_"  # PostgreSQL: `<schema>__retired_<UTC time>` (--keep-old)
# PostgreSQL: how long the switch-over waits for running writers before it refuses.
SWAP_LOCK_TIMEOUT = "30s"
_ROTATION_LOCK = "trial-ingest rotate-key"  # advisory lock: one rotation at a time
_DDL_LOCK = "trial-ingest ddl"  # the advisory lock `Warehouse.create_schema` takes
_rotations_metadata = sa.MetaData()
KEY_ROTATIONS = sa.Table(
    "key_rotations",
    _rotations_metadata,
    sa.Column("rotated_at", sa.DateTime(), nullable=False),
    sa.Column("old_key_ids", sa.String(), nullable=False),  # ';'-joined key ids (not keys)
    sa.Column("new_key_id", sa.String(), nullable=False),
    sa.Column("submissions_replayed", sa.BigInteger(), nullable=False),
    sa.Column("returns_lost", sa.BigInteger(), nullable=False),
    sa.Column("rows_clean", sa.BigInteger(), nullable=False),
    sa.Column("rows_history", sa.BigInteger(), nullable=False),
    sa.Column("rows_quarantine", sa.BigInteger(), nullable=False),
    schema="ops",
)


class RotationError(RuntimeError):
    """The rotation stopped; the warehouse in use is untouched. Names LAs, datasets, counts."""


class RotationRefused(RotationError):
    """Some current data cannot be re-keyed (its raw file is gone), or the warehouse is busy."""


class RotationVerificationFailed(RotationError):
    """The rebuilt warehouse does not match the old one; it is not swapped in."""


@dataclass(frozen=True)
class LostReturn:
    """A processed file whose raw file is no longer landed (deleted by retention)."""

    la_code: str
    dataset: str | None  # None: the file as a whole (rejected before any dataset)
    submission_id: str
    status: str


@dataclass(frozen=True)
class RotationPlan:
    replay: tuple[LandedFile, ...]  # processed before, in received order
    lost: tuple[LostReturn, ...]
    unprocessed: tuple[LandedFile, ...]  # landed but never processed: left out, reported

    def lost_pairs(self) -> list[str]:
        """`LA x dataset` of the lost returns, for messages."""
        pairs = {f"{r.la_code} x {r.dataset or 'whole file'}" for r in self.lost}
        return sorted(pairs)


@dataclass(frozen=True)
class RotationResult:
    old_key_ids: tuple[str, ...]
    new_key_id: str
    rotated_at: datetime
    submissions_replayed: int
    returns_lost: tuple[LostReturn, ...]
    unprocessed: int
    rows: dict[str, int] = field(default_factory=dict)  # clean, history, quarantine totals
    swapped: bool = False
    target_url: str = ""  # where the new warehouse is (without password)
    retired_schemas: tuple[str, ...] = ()  # PostgreSQL --keep-old: the old schemas, kept


# --- the plan ---------------------------------------------------------------------------------


def receipt_of(landed: LandedFile) -> str:
    """The receipt id the pipeline gave the landed file when it first processed it."""
    return Received(
        landed.la_code, b"", landed.received_at, landed.submission_id, landed.sha256
    ).receipt_id


def _is_held(row: SubmissionRecord) -> bool:
    return str(row.status) == "held" or (row.reason or "").startswith("held:")


def plan_rotation(landing: Landing, old: Warehouse) -> RotationPlan:
    """What can be replayed, what is lost and what was never processed."""
    audit = [r for r in old.submissions() if r.status != "duplicate"]
    landed = sorted(landing.list(), key=lambda f: (f.received_at, f.submission_id))
    processed = {r.receipt_id for r in audit}
    replay = tuple(f for f in landed if receipt_of(f) in processed)
    unprocessed = tuple(f for f in landed if receipt_of(f) not in processed)
    replayed_receipts = {receipt_of(f) for f in replay}
    lost = tuple(
        LostReturn(r.la_code, r.dataset, r.submission_id, str(r.status))
        for r in audit
        if r.receipt_id not in replayed_receipts
    )
    return RotationPlan(replay=replay, lost=lost, unprocessed=unprocessed)


def refuse_unless_allowed(plan: RotationPlan, *, allow_loss: bool) -> None:
    if plan.lost and not allow_loss:
        raise RotationRefused(
            f"{len({r.submission_id for r in plan.lost})} processed file(s) are no longer in "
            "the landing store (deleted by retention), so their rows cannot be re-keyed: "
            + ", ".join(plan.lost_pairs())
            + ". Rotation would drop them; pass --allow-loss to proceed anyway."
        )


# --- the rebuild ------------------------------------------------------------------------------


def rebuild(
    landing: Landing,
    old: Warehouse,
    new: Warehouse,
    tokeniser: Tokeniser,
    plan: RotationPlan,
    *,
    now: datetime,
) -> RotationResult:
    """Replay `plan` into the empty `new` warehouse, carry the audit over, verify, record."""
    new.create_schema()
    if new.submissions():
        raise RotationRefused("the target warehouse is not empty: give an empty one")
    old_audit = old.submissions()
    services = Services(landing=landing, warehouse=new, tokeniser=tokeniser, clock=lambda: now)
    held_receipts = {r.receipt_id for r in old_audit if _is_held(r)}
    for landed in plan.replay:
        received = take_from_landing(services, landed.la_code, landed.submission_id)
        process_received(
            services,
            received,
            detect_duplicate=False,
            release_held=received.receipt_id not in held_receipts,
        )
    replayed = {receipt_of(f) for f in plan.replay}
    new.record_submission([r for r in old_audit if r.receipt_id not in replayed])
    _copy_allocation_and_retention(old, new)
    verify(old, new, tokeniser.key_id, plan)
    result = RotationResult(
        old_key_ids=tuple(sorted(stored_key_ids(old))),
        new_key_id=tokeniser.key_id,
        rotated_at=now,
        submissions_replayed=len(plan.replay),
        returns_lost=plan.lost,
        unprocessed=len(plan.unprocessed),
        rows=_row_totals(new),
    )
    _record_rotation(old, new, result)
    return result


def _copy_allocation_and_retention(old: Warehouse, new: Warehouse) -> None:
    allocation = [vars(row) for row in old.allocation()]
    retention = old.retention_log()
    with new.engine.begin() as conn:
        if allocation:
            conn.execute(sa.insert(new.table("trial", "allocation")), allocation)
        for row in retention:
            new_row = {**row}
            new_row["received_at"] = row["received_at"].replace(tzinfo=None)
            new_row["deleted_at"] = row["deleted_at"].replace(tzinfo=None)
            conn.execute(sa.insert(new.table("ops", "retention_log")), [new_row])


def _record_rotation(old: Warehouse, new: Warehouse, result: RotationResult) -> None:
    earlier = _earlier_rotations(old)
    row = {
        "rotated_at": result.rotated_at.astimezone(UTC).replace(tzinfo=None),
        "old_key_ids": ";".join(result.old_key_ids),
        "new_key_id": result.new_key_id,
        "submissions_replayed": result.submissions_replayed,
        "returns_lost": len({r.submission_id for r in result.returns_lost}),
        "rows_clean": result.rows.get("clean", 0),
        "rows_history": result.rows.get("history", 0),
        "rows_quarantine": result.rows.get("quarantine", 0),
    }
    with new.engine.begin() as conn:
        KEY_ROTATIONS.create(conn, checkfirst=True)
        conn.execute(sa.insert(KEY_ROTATIONS), [*earlier, row])


def _earlier_rotations(old: Warehouse) -> list[dict[str, Any]]:
    with old.engine.connect() as conn:
        schema = conn.schema_for_object(KEY_ROTATIONS)
        if not sa.inspect(conn).has_table("key_rotations", schema=schema):
            return []
        return [dict(r) for r in conn.execute(sa.select(KEY_ROTATIONS)).mappings()]


def key_rotations(warehouse: Warehouse) -> list[dict[str, Any]]:
    """The warehouse's rotation records, oldest first."""
    rows = _earlier_rotations(warehouse)
    return sorted(rows, key=lambda r: r["rotated_at"])


# --- verification -----------------------------------------------------------------------------


def _data_tables(warehouse: Warehouse) -> Iterable[tuple[str, str, sa.Table]]:
    for dataset in DATASETS:
        yield "clean", dataset, warehouse.table("clean", dataset)
        yield "history", dataset, warehouse.table("history", dataset)
        yield "quarantine", dataset, warehouse.table("ops", f"quarantine_{dataset}")


def _grouped_counts(warehouse: Warehouse) -> Counter[tuple[str, str, str, str]]:
    """Rows per (table kind, dataset, LA, submission)."""
    counts: Counter[tuple[str, str, str, str]] = Counter()
    with warehouse.engine.connect() as conn:
        for kind, dataset, table in _data_tables(warehouse):
            query = sa.select(table.c.la_code, table.c.submission_id, sa.func.count()).group_by(
                table.c.la_code, table.c.submission_id
            )
            for la_code, submission_id, n in conn.execute(query):
                counts[(kind, dataset, la_code, submission_id)] = int(n)
    return counts


def stored_key_ids(warehouse: Warehouse) -> set[str]:
    """Every key id found on a stored row."""
    found: set[str] = set()
    with warehouse.engine.connect() as conn:
        for _, _, table in _data_tables(warehouse):
            found.update(r[0] for r in conn.execute(sa.select(table.c.key_id).distinct()))
    return found


def _withdrawn_counts(warehouse: Warehouse) -> dict[str, tuple[int, int]]:
    table = warehouse.table("ops", "withdrawn")
    query = sa.select(
        table.c.la_code,
        sa.func.count(sa.distinct(table.c.person_token)),
        sa.func.count(sa.distinct(table.c.family_token)),
    ).group_by(table.c.la_code)
    with warehouse.engine.connect() as conn:
        return {la: (int(p), int(f)) for la, p, f in conn.execute(query)}


def _row_totals(warehouse: Warehouse) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for (kind, *_), n in _grouped_counts(warehouse).items():
        totals[kind] += n
    return dict(totals)


def verify(old: Warehouse, new: Warehouse, new_key_id: str, plan: RotationPlan) -> None:
    """The new warehouse holds what the old one held, under the new key only.

    Returns lost to retention (allowed) are left out of the comparison; withdrawn people must
    not be fewer, so a lost withdrawals return cannot bring anyone back.
    """
    problems: list[str] = []
    lost_submissions = {r.submission_id for r in plan.lost}
    lost_pairs = {(r.la_code, r.dataset) for r in plan.lost}
    problems += _compare_current_returns(old, new, lost_pairs)
    problems += _compare_counts(old, new, lost_submissions, lost_pairs)
    foreign = stored_key_ids(new) - {new_key_id}
    if foreign:
        problems.append(f"{len(foreign)} other key id(s) found on stored rows")
    problems += _compare_audit(old, new, plan)
    problems += _compare_withdrawn(old, new, exact=not plan.lost)
    if problems:
        raise RotationVerificationFailed(
            "the rebuilt warehouse does not match the one in use, so it was not swapped in: "
            + "; ".join(problems)
        )


def _compare_current_returns(
    old: Warehouse, new: Warehouse, lost_pairs: set[tuple[str, str | None]]
) -> list[str]:
    def current(warehouse: Warehouse) -> dict[tuple[str, str], str]:
        return {
            (c.la_code, c.dataset): c.submission_id
            for c in warehouse.current_returns()
            if (c.la_code, c.dataset) not in lost_pairs
        }

    before, after = current(old), current(new)
    differing = sorted(
        f"{la} x {ds}"
        for la, ds in before.keys() | after.keys()
        if before.get((la, ds)) != after.get((la, ds))
    )
    return [f"current return differs for {', '.join(differing)}"] if differing else []


def _compare_counts(
    old: Warehouse,
    new: Warehouse,
    lost_submissions: set[str],
    lost_pairs: set[tuple[str, str | None]],
) -> list[str]:
    def kept(counts: Counter[tuple[str, str, str, str]]) -> Counter[tuple[str, str, str, str]]:
        return Counter(
            {
                key: n
                for key, n in counts.items()
                if key[3] not in lost_submissions
                and not (key[0] == "clean" and (key[2], key[1]) in lost_pairs)
            }
        )

    before, after = kept(_grouped_counts(old)), kept(_grouped_counts(new))
    differing = sorted(
        {
            f"{kind} {la} x {ds}"
            for kind, ds, la, sid in before.keys() | after.keys()
            if before[(kind, ds, la, sid)] != after[(kind, ds, la, sid)]
        }
    )
    return [f"row counts differ for {', '.join(differing)}"] if differing else []


def _compare_audit(old: Warehouse, new: Warehouse, plan: RotationPlan) -> list[str]:
    replayed = {receipt_of(f) for f in plan.replay}
    lost_pairs = {(r.la_code, r.dataset) for r in plan.lost}

    def outcomes(warehouse: Warehouse) -> dict[tuple[str, str | None], tuple[str, str | None]]:
        return {
            (r.receipt_id, r.dataset): (str(r.status), r.reason)
            for r in warehouse.submissions()
            if r.receipt_id in replayed and (r.la_code, r.dataset) not in lost_pairs
        }

    before, after = outcomes(old), outcomes(new)
    differing = sum(1 for key in before.keys() | after.keys() if before.get(key) != after.get(key))
    return [f"{differing} audit outcome(s) differ"] if differing else []


def _compare_withdrawn(old: Warehouse, new: Warehouse, *, exact: bool) -> list[str]:
    before, after = _withdrawn_counts(old), _withdrawn_counts(new)
    problems = []
    for la_code in sorted(before.keys() | after.keys()):
        was, now = before.get(la_code, (0, 0)), after.get(la_code, (0, 0))
        fewer = now[0] < was[0] or now[1] < was[1]
        if fewer or (exact and now != was):
            problems.append(f"withdrawn people or families of LA {la_code} differ")
    return problems


# --- swapping ---------------------------------------------------------------------------------


def duckdb_path(url: str) -> Path | None:
    """The file of a DuckDB warehouse URL (None for another database or an in-memory one)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "duckdb" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser().resolve()


def _audit_fingerprint(warehouse: Warehouse) -> tuple[int, datetime | None]:
    """Changes whenever a file is processed: the audit's row count and latest processing."""
    table = warehouse.table("ops", "submissions")
    query = sa.select(sa.func.count(), sa.func.max(table.c.processed_at))
    with warehouse.engine.connect() as conn:
        count, latest = conn.execute(query).one()
    return int(count), latest


def _remove_database_file(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


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


def rotate_key(
    landing: Landing,
    warehouse_url: str,
    tokeniser: Tokeniser,
    *,
    allow_loss: bool = False,
    target_url: str | None = None,
    keep_old: bool = False,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RotationResult:
    """Rebuild the warehouse under `tokeniser`'s key from the landing store and swap it in.

    For DuckDB the rebuild happens next to the file and is swapped in; for PostgreSQL it
    happens in the same database under `__rotating` schemas, switched over in one transaction
    (`keep_old`: the old schemas are kept as `<name>__retired_<UTC time>`, not dropped). With
    `target_url` the rebuild goes into that empty database and the operator switches over.
    """
    old = Warehouse(warehouse_url)
    old.create_schema()
    old_path = duckdb_path(warehouse_url)
    in_place = old_path is None and not target_url
    if in_place and old.dialect != "postgresql":
        old.dispose()
        raise RotationError(
            "this warehouse is neither a DuckDB file nor PostgreSQL: give an empty database to "
            "build the rotated warehouse in (--target-url), then switch TRIAL_WAREHOUSE_URL to it"
        )
    if keep_old and not in_place:
        old.dispose()
        raise RotationError("--keep-old is for PostgreSQL rotated in place (no --target-url)")
    if in_place:
        try:
            return _rotate_postgres(
                landing,
                old,
                warehouse_url,
                tokeniser,
                allow_loss=allow_loss,
                keep_old=keep_old,
                clock=clock,
            )
        finally:
            old.dispose()
    plan = plan_rotation(landing, old)
    refuse_unless_allowed(plan, allow_loss=allow_loss)
    fingerprint = _audit_fingerprint(old)
    new_path = None if target_url else _fresh_path(old_path)
    new = Warehouse(target_url or duckdb_url(new_path or Path()))
    try:
        result = rebuild(landing, old, new, tokeniser, plan, now=clock())
    except BaseException:
        new.dispose()
        old.dispose()
        if new_path is not None:
            _remove_database_file(new_path)
        raise
    new.dispose()
    old.dispose()
    if new_path is None or old_path is None:
        shown = sa.make_url(target_url or "").render_as_string(hide_password=True)
        return _with(result, swapped=False, target_url=shown)
    try:
        _checkpoint(new_path)
        _swap_duckdb(old_path, new_path, fingerprint)
    except BaseException:
        _remove_database_file(new_path)
        raise
    return _with(result, swapped=True, target_url=duckdb_url(old_path))


# --- PostgreSQL: rebuilt under suffixed schemas, switched over in one transaction --------------


def _rotate_postgres(
    landing: Landing,
    old: Warehouse,
    warehouse_url: str,
    tokeniser: Tokeniser,
    *,
    allow_loss: bool,
    keep_old: bool,
    clock: Callable[[], datetime],
) -> RotationResult:
    with _one_rotation_at_a_time(old):
        plan = plan_rotation(landing, old)
        refuse_unless_allowed(plan, allow_loss=allow_loss)
        with old.engine.connect() as conn:
            before = _postgres_state(conn, old)
        _drop_schemas(old, _rotating_schemas())  # a leftover of an interrupted rotation
        new = Warehouse(warehouse_url, schema_suffix=ROTATING_SCHEMA_SUFFIX)
        try:
            result = rebuild(landing, old, new, tokeniser, plan, now=clock())
            new.dispose()
            retired = _switch_postgres(old, before, stamp=clock(), keep_old=keep_old)
        except BaseException:
            new.dispose()
            # Nothing was committed by the switch-over: only the rotating schemas go.
            with contextlib.suppress(RotationError):
                _drop_schemas(old, _rotating_schemas())
            raise
    shown = old.engine.url.render_as_string(hide_password=True)
    kept = retired if keep_old else ()
    return _with(result, swapped=True, target_url=shown, retired_schemas=kept)


def _rotating_schemas() -> tuple[str, ...]:
    return tuple(schema + ROTATING_SCHEMA_SUFFIX for schema in SCHEMAS)


@contextlib.contextmanager
def _one_rotation_at_a_time(warehouse: Warehouse) -> Iterator[None]:
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


def _postgres_state(conn: sa.Connection, warehouse: Warehouse) -> tuple[Any, ...]:
    """Changes whenever a file is processed or loaded: the audit fingerprint (as for DuckDB),
    every data table's row count and the current returns (ids and times only)."""
    submissions = warehouse.table("ops", "submissions")
    count, latest = conn.execute(
        sa.select(sa.func.count(), sa.func.max(submissions.c.processed_at))
    ).one()
    tables = [table for _, _, table in _data_tables(warehouse)]
    tables.append(warehouse.table("ops", "withdrawn"))
    rows = tuple(
        int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
        for table in tables
    )
    current = warehouse.table("ops", "current_returns")
    query = sa.select(current).order_by(current.c.la_code, current.c.dataset)
    returns = tuple(tuple(row) for row in conn.execute(query))
    return (int(count), latest), rows, returns


def _drop_schemas(warehouse: Warehouse, names: Iterable[str]) -> None:
    preparer = warehouse.engine.dialect.identifier_preparer
    failure = ""
    try:
        with warehouse.engine.begin() as conn:
            for name in names:
                conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {preparer.quote(name)} CASCADE"))
            return
    except sa.exc.SQLAlchemyError as exc:
        failure = _describe_database_error(exc)
    raise RotationError(f"the rotating schemas could not be dropped: {failure}")


def _switch_postgres(
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
        f"the switch-over failed and was rolled back: {_describe_database_error(failure)}"
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
    if _postgres_state(conn, old) != before:
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


def _fresh_path(old_path: Path | None) -> Path:
    if old_path is None:
        raise RotationError("no DuckDB file to rotate")
    path = old_path.with_name(old_path.name + ROTATING_SUFFIX)
    _remove_database_file(path)  # a leftover of an interrupted rotation
    return path


def _with(
    result: RotationResult,
    *,
    swapped: bool,
    target_url: str,
    retired_schemas: tuple[str, ...] = (),
) -> RotationResult:
    changed = {"swapped": swapped, "target_url": target_url, "retired_schemas": retired_schemas}
    return RotationResult(**{**vars(result), **changed})


def main_rotate_key(
    *,
    allow_loss: bool = False,
    target_url: str | None = None,
    keep_old: bool = False,
    env: Mapping[str, str] | None = None,
) -> int:
    """`trial-ingest rotate-key`: the new key comes from the usual key settings."""
    from ingest.retention import landing_from_env, warehouse_url_from_env
    from pseudonymise.keys import load_key

    env = os.environ if env is None else env
    tokeniser = Tokeniser(load_key("PSEUDONYM", env))
    try:
        result = rotate_key(
            landing_from_env(env),
            warehouse_url_from_env(env),
            tokeniser,
            allow_loss=allow_loss,
            target_url=target_url,
            keep_old=keep_old,
        )
    except RotationError as exc:
        print(f"Key rotation stopped, nothing changed: {exc}")
        return 2
    _print_result(result)
    return 0


def _print_result(result: RotationResult) -> None:
    print(
        f"Rebuilt the warehouse under key {result.new_key_id} (was "
        f"{', '.join(result.old_key_ids) or 'empty'}): {result.submissions_replayed} file(s) "
        f"replayed; rows: " + ", ".join(f"{k} {v}" for k, v in sorted(result.rows.items()))
    )
    if result.returns_lost:
        pairs = sorted({f"{r.la_code} x {r.dataset or 'whole file'}" for r in result.returns_lost})
        print(f"Dropped (raw file deleted by retention): {', '.join(pairs)}")
    if result.unprocessed:
        print(f"{result.unprocessed} landed file(s) never processed were left out")
    if result.swapped:
        print(f"Swapped in: {result.target_url}")
        if result.retired_schemas:
            print(
                "Kept the old warehouse's schemas, which still hold the old tokens: drop them "
                "(DROP SCHEMA ... CASCADE) once done: " + ", ".join(result.retired_schemas)
            )
    else:
        print(f"Verified in {result.target_url}: now point TRIAL_WAREHOUSE_URL at it")
