"""The audit table, previous returns and issues with whole files.

Every behaviour test runs on DuckDB and, when the local server answers, on PostgreSQL.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from loads import (
    T0,
    T1,
    load,
    outcome,
    rows,
)
from old_formats import PLAIN, make_old_format

from ingest.warehouse import (
    SubmissionRecord,
    Warehouse,
)
from schemas.outcome import FileIssue
from schemas.rules import Severity


def record(receipt: str, dataset: str | None, status: str, **changes: Any) -> SubmissionRecord:
    values: dict[str, Any] = {
        "receipt_id": receipt,
        "submission_id": "201-a",
        "la_code": "201",
        "dataset": dataset,
        "status": status,
        "reason": None,
        "rows_received": 3,
        "rows_loaded": 2,
        "rows_rejected": 1,
        "received_at": T0,
        "processed_at": T0 + timedelta(minutes=1),
        "content_hmac": "ab" * 32,
        "size_bytes": 120,
        "key_id": "k1",
    }
    values.update(changes)
    return SubmissionRecord(**values)


def test_record_submission_upserts_by_receipt_and_dataset(warehouse: Warehouse) -> None:
    warehouse.record_submission(
        [record("r1", None, "accepted"), record("r1", "people", "accepted")]
    )

    warehouse.record_submission(
        [record("r1", None, "rejected", reason="x"), record("r1", "people", "rejected")]
    )
    warehouse.record_submission([record("r2", None, "duplicate")])

    stored = warehouse.submissions("201")
    assert [(r.receipt_id, r.dataset, r.status) for r in stored] == [
        ("r1", None, "rejected"),
        ("r1", "people", "rejected"),
        ("r2", None, "duplicate"),
    ]
    assert stored[0] == record("r1", None, "rejected", reason="x")  # times come back in UTC


def test_is_duplicate_counts_processed_files_of_the_same_la(warehouse: Warehouse) -> None:
    warehouse.record_submission([record("r1", None, "duplicate", content_hmac="dd" * 32)])
    warehouse.record_submission([record("r2", "people", "rejected", content_hmac="ee" * 32)])
    warehouse.record_submission([record("r3", "people", "held", content_hmac="cc" * 32)])

    assert warehouse.is_duplicate("201", "ee" * 32)
    assert warehouse.is_duplicate("201", "cc" * 32)  # held: processed, waiting for a person
    assert warehouse.submissions("201")[-1].status == "held"
    assert not warehouse.is_duplicate("201", "dd" * 32)  # only recorded as a duplicate
    assert not warehouse.is_duplicate("305", "ee" * 32)
    assert not warehouse.is_duplicate("201", "ff" * 32)


def test_record_submission_refuses_an_unknown_status(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="status"):
        warehouse.record_submission([record("r1", None, "maybe")])


def test_previous_accepted_gives_rows_and_newest_service_date(warehouse: Warehouse) -> None:
    assert warehouse.previous_accepted("201", "episodes") is None
    base = {"family_token": "f1", "keyworker_token": "k1", "start_date": date(2024, 10, 1)}
    load(
        warehouse,
        outcome(
            "episodes",
            [
                {**base, "episode_token": "e1", "end_date": date(2025, 2, 3)},
                {**base, "episode_token": "e2", "assessment_date": date(2024, 11, 5)},
            ],
        ),
        "a",
        T1,
    )
    load(warehouse, outcome("episodes", [{**base, "episode_token": "e3"}]), "old", T0)

    previous = warehouse.previous_accepted("201", "episodes")

    assert previous is not None
    assert previous.submission_id == "201-a"
    assert previous.received_at == T1
    assert previous.rows_loaded == 2
    assert previous.newest_record_date == date(2025, 2, 3)
    assert [(c.la_code, c.dataset, c.submission_id) for c in warehouse.current_returns()] == [
        ("201", "episodes", "201-a")
    ]


def test_file_issues_are_recorded_without_a_dataset(warehouse: Warehouse) -> None:
    issue = FileIssue(rule="unreadable_file", severity=Severity.ERROR)

    warehouse.record_file_issues(la_code="201", submission_id="201-a", issues=[issue])
    warehouse.record_file_issues(la_code="201", submission_id="201-a", issues=[issue])

    assert rows(warehouse, "ops", "issues", "dataset", "rule", "severity") == [
        (None, "unreadable_file", "error")
    ]


# --- allocation -----------------------------------------------------------------------------


# --- warehouses made when the audit held the file's plain SHA-256 ---------------------------


def test_an_old_audit_loses_its_plain_hashes_and_keeps_its_rows(warehouse: Warehouse) -> None:
    """Plain SHA-256 values are overwritten and their column dropped (they cannot be keyed
    without the raw file); the rows stay, with a null `content_hmac`."""
    make_old_format(warehouse)
    again = Warehouse(warehouse.engine.url.render_as_string(hide_password=False))
    again.create_schema()

    with again.engine.connect() as conn:
        columns = conn.execute(
            sa.text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'ops' AND table_name = 'submissions'"
            )
        ).all()
        stored = conn.execute(sa.text("SELECT * FROM ops.submissions")).all()
    assert {c for (c,) in columns} >= {"content_hmac", "receipt_id", "size_bytes"}
    assert "sha256" not in {c for (c,) in columns}
    assert PLAIN not in repr(stored)
    (old,) = again.submissions()
    assert (old.receipt_id, old.status, old.rows_loaded, old.content_hmac) == (
        "r0",
        "accepted",
        1,
        None,
    )
    again.record_submission([record("r1", "people", "accepted", content_hmac="ab" * 32)])
    assert again.is_duplicate("201", "ab" * 32)
    assert not again.is_duplicate("201", PLAIN)
    # A copy of the file recorded before is still found, by the id those rows carry.
    assert again.is_duplicate("201", "cd" * 32, legacy_submission_id="201-" + PLAIN[:24])
    assert not again.is_duplicate("201", "cd" * 32, legacy_submission_id="201-" + "0" * 24)
    again.dispose()


def test_postgresql_keeps_no_old_row_version_with_a_plain_hash(
    postgres_warehouse: Warehouse,
) -> None:
    """PostgreSQL keeps a dropped column's values, and updated rows' old versions, in the
    table's pages until they are rewritten."""
    make_old_format(postgres_warehouse)
    again = Warehouse(postgres_warehouse.engine.url.render_as_string(hide_password=False))
    again.create_schema()
    with again.engine.begin() as conn:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pageinspect"))
        pages = conn.execute(
            sa.text(
                "SELECT pg_relation_size('ops.submissions') / current_setting('block_size')::int"
            )
        ).scalar_one()
        raw = b"".join(
            conn.execute(
                sa.text("SELECT get_raw_page('ops.submissions', :n)"), {"n": n}
            ).scalar_one()
            for n in range(pages)
        )
    again.dispose()
    assert PLAIN.encode() not in raw
