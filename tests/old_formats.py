"""What the service wrote before file ids were keyed: an audit table with the file's plain
SHA-256 (`make_old_format`). Files landed then are made by `test_landing.land_legacy`."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from ingest.warehouse import Warehouse

_OLD_SUBMISSIONS = """
CREATE TABLE ops.submissions (
    receipt_id VARCHAR NOT NULL, submission_id VARCHAR NOT NULL, la_code VARCHAR NOT NULL,
    dataset VARCHAR, status VARCHAR NOT NULL, reason VARCHAR,
    rows_received BIGINT NOT NULL, rows_loaded BIGINT NOT NULL, rows_rejected BIGINT NOT NULL,
    received_at TIMESTAMP NOT NULL, processed_at TIMESTAMP NOT NULL,
    sha256 VARCHAR NOT NULL, size_bytes BIGINT NOT NULL, key_id VARCHAR NOT NULL,
    UNIQUE (receipt_id, dataset)
)
"""
PLAIN = hashlib.sha256(b"person_id\nP-00042\n").hexdigest()


def make_old_format(warehouse: Warehouse, plain: str = PLAIN) -> None:
    """`ops.submissions` as it was, with one accepted file whose plain SHA-256 is `plain`."""
    warehouse.create_schema()
    with warehouse.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE ops.submissions"))
        conn.execute(sa.text(_OLD_SUBMISSIONS))
        conn.execute(
            sa.text(
                "INSERT INTO ops.submissions VALUES ('r0', :sid, '201', 'people', 'accepted', "
                "NULL, 1, 1, 0, '2025-01-01 00:00:00', '2025-01-01 00:01:00', :plain, 18, 'k1')"
            ),
            {"sid": "201-" + plain[:24], "plain": plain},
        )
