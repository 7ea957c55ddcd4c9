"""What a rotation writes into the rebuilt warehouse besides the replayed files: the allocation
and retention log carried over, and its record in `ops.key_rotations` (old key ids, new key id,
time, counts; earlier rotations' records carried over too)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ingest.rotation.plan import LostReturn
from ingest.warehouse import Warehouse

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


@dataclass(frozen=True)
class RotationResult:
    """What a rotation did: keys, counts, lost returns, and where the new warehouse is."""

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


def copy_allocation_and_retention(old: Warehouse, new: Warehouse) -> None:
    """The allocation and the retention log, as they are (times stored without a zone)."""
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


def record_rotation(old: Warehouse, new: Warehouse, result: RotationResult) -> None:
    """This rotation's row in the new warehouse's `ops.key_rotations`, after the earlier ones."""
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
