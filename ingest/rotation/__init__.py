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
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from ingest.processing import Services, process_received, take_from_landing
from ingest.rotation.duckdb_swap import (
    audit_fingerprint,
    duckdb_path,
    remove_database_file,
    rotating_path,
    swap_in,
)
from ingest.rotation.errors import RotationError, RotationRefused, RotationVerificationFailed
from ingest.rotation.plan import (
    LostReturn,
    RotationPlan,
    plan_rotation,
    receipt_of,
    refuse_unless_allowed,
)
from ingest.rotation.postgres_switch import (
    ROTATING_SCHEMA_SUFFIX,
    drop_rotating_schemas,
    one_rotation_at_a_time,
    postgres_state,
    switch_over,
)
from ingest.rotation.records import (
    RotationResult,
    copy_allocation_and_retention,
    key_rotations,
    record_rotation,
)
from ingest.rotation.verify import row_totals, stored_key_ids, verify
from ingest.storage.landing import Landing
from ingest.warehouse import Warehouse, duckdb_url
from pseudonymise.tokens import Tokeniser

__all__ = [
    "LostReturn",
    "RotationError",
    "RotationPlan",
    "RotationRefused",
    "RotationResult",
    "RotationVerificationFailed",
    "key_rotations",
    "plan_rotation",
    "rebuild",
    "rotate_key",
    "stored_key_ids",
    "verify",
]


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
    fingerprint = audit_fingerprint(old)
    new_path = None if target_url else rotating_path(old_path)
    new = Warehouse(target_url or duckdb_url(new_path or Path()))
    try:
        result = rebuild(landing, old, new, tokeniser, plan, now=clock())
    except BaseException:
        new.dispose()
        old.dispose()
        if new_path is not None:
            remove_database_file(new_path)
        raise
    new.dispose()
    old.dispose()
    if new_path is None or old_path is None:
        shown = sa.make_url(target_url or "").render_as_string(hide_password=True)
        return replace(result, swapped=False, target_url=shown)
    swap_in(old_path, new_path, fingerprint)
    return replace(result, swapped=True, target_url=duckdb_url(old_path))


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
    """Rebuilt under `__rotating` schemas of the same database, then switched over."""
    with one_rotation_at_a_time(old):
        plan = plan_rotation(landing, old)
        refuse_unless_allowed(plan, allow_loss=allow_loss)
        with old.engine.connect() as conn:
            before = postgres_state(conn, old)
        drop_rotating_schemas(old)  # a leftover of an interrupted rotation
        new = Warehouse(warehouse_url, schema_suffix=ROTATING_SCHEMA_SUFFIX)
        try:
            result = rebuild(landing, old, new, tokeniser, plan, now=clock())
            new.dispose()
            retired = switch_over(old, before, stamp=clock(), keep_old=keep_old)
        except BaseException:
            new.dispose()
            # Nothing was committed by the switch-over: only the rotating schemas go.
            with contextlib.suppress(RotationError):
                drop_rotating_schemas(old)
            raise
    shown = old.engine.url.render_as_string(hide_password=True)
    kept = retired if keep_old else ()
    return replace(result, swapped=True, target_url=shown, retired_schemas=kept)


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
    held_receipts = {r.receipt_id for r in old_audit if r.status == "held"}
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
    copy_allocation_and_retention(old, new)
    verify(old, new, tokeniser.key_id, plan)
    result = RotationResult(
        old_key_ids=tuple(sorted(stored_key_ids(old))),
        new_key_id=tokeniser.key_id,
        rotated_at=now,
        submissions_replayed=len(plan.replay),
        returns_lost=plan.lost,
        unprocessed=len(plan.unprocessed),
        rows=row_totals(new),
    )
    record_rotation(old, new, result)
    return result
