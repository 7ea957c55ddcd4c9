"""Loading returns: atomic replace, history, order by received time, withdrawals, rollback.

Every behaviour test runs on DuckDB and, when the local server answers, on PostgreSQL.
"""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl
import pytest
import sqlalchemy as sa
from loads import (
    T0,
    T1,
    T2,
    load,
    outcome,
    people,
    person,
    rows,
    snapshot,
    tokens,
)

from ingest.warehouse import (
    DuckDBArrowInserter,
    Warehouse,
    WarehouseLoadError,
)
from schemas.outcome import ROW_NUMBER, FileIssue
from schemas.rules import CODE_LIST, NO_VALID_ROWS, Severity


def test_latest_return_replaces_the_las_rows(warehouse: Warehouse) -> None:
    load(warehouse, people("p1", "p2"), "a", T0)
    load(warehouse, people("p1", "p2"), "a", T0, la_code="305")

    result = load(warehouse, people("p3"), "b", T1)

    assert result.became_current and result.rows_loaded == 1
    assert tokens(warehouse, "clean", "people") == ["p3"]
    assert tokens(warehouse, "clean", "people", "305") == ["p1", "p2"]  # other LAs untouched
    assert rows(warehouse, "history", "people", "submission_id", "person_token") == [
        ("201-a", "p1"),
        ("201-a", "p2"),
        ("201-b", "p3"),
        ("305-a", "p1"),
        ("305-a", "p2"),
    ]
    assert rows(warehouse, "ops", "current_returns", "la_code", "dataset", "submission_id") == [
        ("201", "people", "201-b"),
        ("305", "people", "305-a"),
    ]


def test_reloading_a_submission_changes_nothing(warehouse: Warehouse) -> None:
    rejected = [{"person_token": "p9", "role": "BAD"}]
    load(warehouse, outcome("people", [person("p1"), person("p2")], rejected), "a", T0)
    load(warehouse, outcome("withdrawals", [{"person_token": "p2"}]), "w", T0)
    load(warehouse, outcome("people", [person("p3")], rejected), "b", T1)
    before = snapshot(warehouse)

    load(warehouse, outcome("people", [person("p3")], rejected), "b", T1)
    load(warehouse, outcome("people", [person("p1"), person("p2")], rejected), "a", T0)
    load(warehouse, outcome("withdrawals", [{"person_token": "p2"}]), "w", T0)

    assert snapshot(warehouse) == before


def test_an_older_return_does_not_replace_a_newer_one(warehouse: Warehouse) -> None:
    load(warehouse, people("new"), "b", T1)

    result = load(warehouse, people("old"), "a", T0)

    assert not result.became_current
    assert result.skipped_reason == "newer_return"
    assert result.current_submission_id == "201-b"
    assert tokens(warehouse, "clean", "people") == ["new"]
    assert rows(warehouse, "history", "people", "submission_id") == [("201-a",), ("201-b",)]


def test_a_return_received_at_the_same_time_is_ordered_by_id(warehouse: Warehouse) -> None:
    load(warehouse, people("from-b"), "b", T0)
    load(warehouse, people("from-a"), "a", T0)

    assert tokens(warehouse, "clean", "people") == ["from-b"]


def test_a_rejected_return_keeps_the_earlier_rows(warehouse: Warehouse) -> None:
    load(warehouse, people("p1"), "a", T0)
    failed = outcome(
        "people",
        [],
        [{"person_token": "p2"}],
        file_issues=[FileIssue(rule=NO_VALID_ROWS, severity=Severity.ERROR)],
    )

    result = load(warehouse, failed, "b", T1)

    assert result.skipped_reason == "not_accepted"
    assert tokens(warehouse, "clean", "people") == ["p1"]
    assert tokens(warehouse, "ops", "people") == ["p2"]
    assert rows(warehouse, "history", "people", "submission_id") == [("201-a",)]
    issues = rows(warehouse, "ops", "issues", "submission_id", ROW_NUMBER, "column", "rule")
    assert ("201-b", None, None, NO_VALID_ROWS) in issues
    assert ("201-b", 2, "role", CODE_LIST) in issues


def test_not_replacing_loads_history_only(warehouse: Warehouse) -> None:
    load(warehouse, people("p1"), "a", T0)

    result = warehouse.load_return(
        la_code="201",
        dataset="people",
        submission_id="201-b",
        key_id="k1",
        received_at=T1,
        table=people("p2"),
        replace=False,
    )

    assert result.skipped_reason == "not_replacing"
    assert tokens(warehouse, "clean", "people") == ["p1"]
    assert tokens(warehouse, "history", "people") == ["p1", "p2"]


def test_quarantine_and_issues_are_recorded_by_submission(warehouse: Warehouse) -> None:
    table = outcome("people", [person("p1")], [{"person_token": "p2", "role": "BAD"}])

    result = load(warehouse, table, "a", T0)

    assert result.rows_quarantined == 1 and result.issues_recorded == 1
    assert rows(warehouse, "ops", "quarantine_people", "person_token", "role", "rules") == [
        ("p2", "BAD", CODE_LIST)
    ]
    assert rows(warehouse, "ops", "issues", "dataset", ROW_NUMBER, "column", "severity") == [
        ("people", 3, "role", "error")
    ]


def test_values_round_trip_with_their_types(warehouse: Warehouse) -> None:
    episode = {
        "episode_token": "e1",
        "family_token": "f1",
        "keyworker_token": "k1",
        "team": 'North, "Hub"',
        "referral_date": date(2024, 9, 2),
        "start_date": date(2024, 9, 3),
        "need_housing": True,
        "need_crime": False,
    }
    load(
        warehouse,
        outcome("episodes", [episode, {**episode, "episode_token": "e2", "team": ""}]),
        "e",
    )
    activity = {"activity_token": "a1", "duration_minutes": 90, "family_token": None}
    load(warehouse, outcome("practice_activity", [activity]), "p", T0)

    got = rows(
        warehouse, "clean", "episodes", "episode_token", "team", "start_date", "need_housing"
    )
    assert got == [
        ("e1", 'North, "Hub"', date(2024, 9, 3), True),
        ("e2", "", date(2024, 9, 3), True),
    ]
    assert rows(warehouse, "clean", "practice_activity", "duration_minutes", "family_token") == [
        (90, None)
    ]


# --- withdrawals ----------------------------------------------------------------------------


def test_withdrawal_removes_the_person_everywhere(warehouse: Warehouse) -> None:
    load(warehouse, outcome("people", [person("p1"), person("p2")], [{"person_token": "p2"}]), "a")
    load(warehouse, people("p1", "p2"), "a", la_code="305")  # the same token in another LA
    score = {"response_token": "r1", "person_token": "p2", "family_token": "f1"}
    load(warehouse, outcome("score15", [score]), "s")

    load(warehouse, outcome("withdrawals", [{"person_token": "p2"}]), "w", T1)

    assert tokens(warehouse, "clean", "people") == ["p1"]
    assert tokens(warehouse, "history", "people") == ["p1"]
    assert tokens(warehouse, "ops", "people") == []
    assert tokens(warehouse, "clean", "score15") == []
    assert tokens(warehouse, "clean", "people", "305") == ["p1", "p2"]
    assert rows(warehouse, "ops", "withdrawn", "la_code", "person_token", "submission_id") == [
        ("201", "p2", "201-w")
    ]


def test_withdrawn_people_are_left_out_of_later_loads(warehouse: Warehouse) -> None:
    load(warehouse, outcome("withdrawals", [{"person_token": "p2"}]), "w", T0)

    result = load(warehouse, people("p1", "p2"), "b", T1)

    assert result.rows_loaded == 1 and result.rows_withdrawn == 1
    assert tokens(warehouse, "clean", "people") == ["p1"]
    assert tokens(warehouse, "history", "people") == ["p1"]


def test_family_withdrawal_removes_every_member_and_episode(warehouse: Warehouse) -> None:
    load(warehouse, outcome("people", [person("p1", "f1"), person("p2", "f2")]), "a")
    episode = {"episode_token": "e1", "family_token": "f1", "keyworker_token": "k1"}
    load(warehouse, outcome("episodes", [episode]), "e")

    load(warehouse, outcome("withdrawals", [{"family_token": "f1"}]), "w", T1)

    assert tokens(warehouse, "clean", "people") == ["p2"]
    assert rows(warehouse, "clean", "episodes", "episode_token") == []


def test_an_older_withdrawal_return_still_withdraws(warehouse: Warehouse) -> None:
    load(warehouse, people("p1", "p2"), "a", T0)
    load(warehouse, outcome("withdrawals", [{"person_token": "p1"}]), "w2", T2)

    load(warehouse, outcome("withdrawals", [{"person_token": "p2"}]), "w1", T1)

    assert tokens(warehouse, "clean", "people") == []
    assert rows(warehouse, "clean", "withdrawals", "person_token") == [("p1",)]


# --- failures roll back ---------------------------------------------------------------------


class FailingInserter(DuckDBArrowInserter):
    """Fails on the insert into one table, after the load has already deleted rows."""

    def __init__(self, fail_on: str) -> None:
        self.fail_on = fail_on

    def insert(self, conn: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> None:
        if table.fullname == self.fail_on:
            raise duckdb.ConversionException("Could not convert string 'CANARY-VALUE' to DATE")
        super().insert(conn, table, frame)


@pytest.mark.parametrize("fail_on", ["ops.quarantine_people", "history.people", "ops.issues"])
def test_failure_mid_load_leaves_the_warehouse_unchanged(duck: Warehouse, fail_on: str) -> None:
    good = duck
    load(good, outcome("people", [person("p1")], [{"person_token": "q1"}]), "a", T0)
    before = snapshot(good)

    url = good.engine.url.render_as_string(hide_password=False)
    failing = Warehouse(url, bulk_inserter=FailingInserter(fail_on))
    replacement = outcome("people", [person("p2")], [{"person_token": "q2"}])
    with pytest.raises(WarehouseLoadError) as raised:
        load(failing, replacement, "a" if fail_on == "history.people" else "b", T1)

    assert snapshot(good) == before
    assert "CANARY-VALUE" not in str(raised.value)
    assert "ConversionException" in str(raised.value)
    assert raised.value.__context__ is None and raised.value.__cause__ is None


def test_database_refusing_the_rows_rolls_back(warehouse: Warehouse) -> None:
    load(warehouse, people("p1"), "a", T0)
    before = snapshot(warehouse)
    broken = people("p2")
    # Passes the frame checks (all-null columns may be cast) but breaks NOT NULL on row_number.
    broken.clean = broken.clean.with_columns(pl.lit(None, pl.Int64()).alias(ROW_NUMBER))

    with pytest.raises(WarehouseLoadError, match="rolled back"):
        load(warehouse, broken, "b", T1)

    assert snapshot(warehouse) == before


def test_wrong_dtype_is_refused_without_values(warehouse: Warehouse) -> None:
    load(warehouse, people("p1"), "a", T0)
    before = snapshot(warehouse)
    table = people("p2")
    table.clean = table.clean.with_columns(pl.lit("CANARY-DATE").alias("month_of_birth"))

    with pytest.raises(WarehouseLoadError, match="month_of_birth is String, expected Date") as e:
        load(warehouse, table, "b", T1)

    assert "CANARY" not in str(e.value)
    assert snapshot(warehouse) == before


def test_unexpected_columns_are_counted_not_named(warehouse: Warehouse) -> None:
    table = people("p1")
    table.clean = table.clean.with_columns(pl.lit("x").alias("Surname of CANARY"))

    with pytest.raises(WarehouseLoadError, match="1 unexpected column") as raised:
        load(warehouse, table, "a")

    assert "CANARY" not in str(raised.value)


# --- the audit table ------------------------------------------------------------------------
