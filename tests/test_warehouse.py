"""The warehouse: atomic replace, history, order by received time, withdrawals, rollback, audit.

Every behaviour test runs on DuckDB and, when the local server answers, on PostgreSQL in a
database created for this module and dropped after it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
import sqlalchemy as sa
from e2e import postgres_database, require_postgres

from ingest.allocation import AllocationError, AllocationRow, read_allocation
from ingest.warehouse import (
    DuckDBArrowInserter,
    SubmissionRecord,
    Warehouse,
    WarehouseError,
    WarehouseLoadError,
    dataset_column_types,
    duckdb_url,
    token_columns,
)
from schemas.datasets import DATASETS
from schemas.outcome import ISSUE_SCHEMA, ROW_NUMBER, FileIssue, TableOutcome
from schemas.rules import CODE_LIST, NO_VALID_ROWS, Severity

T0 = datetime(2025, 1, 10, 9, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=30)
T2 = T0 + timedelta(days=60)

# --- building returns -----------------------------------------------------------------------


def frame(dataset: str, rows: Sequence[dict[str, Any]], *, rules: bool = False) -> pl.DataFrame:
    """A clean (or rejected) frame of `dataset`: unspecified columns are null."""
    schema: dict[str, pl.DataType] = {ROW_NUMBER: pl.Int64()}
    schema.update(dataset_column_types(dataset))
    if rules:
        schema["rules"] = pl.String()
    numbered = [{ROW_NUMBER: i + 2, **row} for i, row in enumerate(rows)]
    return pl.DataFrame(
        [{c: row.get(c) for c in schema} for row in numbered], schema=schema, orient="row"
    )


def outcome(
    dataset: str,
    clean: Sequence[dict[str, Any]],
    rejected: Sequence[dict[str, Any]] = (),
    *,
    file_issues: Sequence[FileIssue] = (),
) -> TableOutcome:
    rejected_rows = [{"rules": CODE_LIST, **row} for row in rejected]
    issues = pl.DataFrame(
        {
            ROW_NUMBER: [len(clean) + 2 + i for i in range(len(rejected_rows))],
            "column": ["role"] * len(rejected_rows),
            "rule": [CODE_LIST] * len(rejected_rows),
            "severity": [str(Severity.ERROR)] * len(rejected_rows),
        },
        schema=ISSUE_SCHEMA,
    )
    return TableOutcome(
        dataset=dataset,
        source="",
        rows_received=len(clean) + len(rejected_rows),
        clean=frame(dataset, clean),
        rejected=frame(dataset, rejected_rows, rules=True),
        issues=issues,
        file_issues=list(file_issues),
    )


def person(token: str, family: str = "f1", role: str = "CHILD") -> dict[str, Any]:
    return {
        "person_token": token,
        "family_token": family,
        "role": role,
        "sex": "F",
        "month_of_birth": date(2015, 3, 1),
    }


def people(*tokens: str, family: str = "f1") -> TableOutcome:
    return outcome("people", [person(t, family) for t in tokens])


def load(
    warehouse: Warehouse,
    table: TableOutcome,
    submission: str,
    received_at: datetime = T0,
    la_code: str = "201",
) -> Any:
    return warehouse.load_return(
        la_code=la_code,
        dataset=table.dataset,
        submission_id=f"{la_code}-{submission}",
        key_id="k1-0000000000000000",
        received_at=received_at,
        table=table,
    )


def rows(warehouse: Warehouse, schema: str, name: str, *columns: str) -> list[tuple[Any, ...]]:
    table = warehouse.table(schema, name)
    chosen = [table.c[c] for c in columns] if columns else list(table.c)
    with warehouse.engine.connect() as conn:
        found = [tuple(r) for r in conn.execute(sa.select(*chosen)).all()]
    # Sorted, nulls first: row order is not part of the contract.
    return sorted(found, key=lambda row: [(value is not None, str(value)) for value in row])


def tokens(warehouse: Warehouse, schema: str, dataset: str, la_code: str = "201") -> list[str]:
    name = dataset if schema != "ops" else f"quarantine_{dataset}"
    return sorted(
        r[1] for r in rows(warehouse, schema, name, "la_code", "person_token") if r[0] == la_code
    )


def all_tables(warehouse: Warehouse) -> list[sa.Table]:
    return list(warehouse.table("ops", "submissions").metadata.tables.values())


def snapshot(warehouse: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted."""
    with warehouse.engine.connect() as conn:
        found = {t.fullname: conn.execute(sa.select(t)).all() for t in all_tables(warehouse)}
    return {
        name: sorted((tuple(r) for r in table_rows), key=repr) for name, table_rows in found.items()
    }


# --- warehouses -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_warehouse() -> Iterator[Warehouse]:
    """A warehouse in a PostgreSQL database of its own, dropped after the module."""
    require_postgres()
    with postgres_database("trial_wh_test") as url:
        built = Warehouse(url)
        try:
            built.create_schema()
            yield built
        finally:
            built.dispose()


@pytest.fixture(scope="module")
def duckdb_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB warehouse with its schema, copied for each test (faster than creating it)."""
    path = tmp_path_factory.mktemp("template") / "warehouse.duckdb"
    built = Warehouse(duckdb_url(path))
    built.create_schema()
    built.dispose()
    return path


@pytest.fixture
def duck(duckdb_template: Path, tmp_path: Path) -> Iterator[Warehouse]:
    path = tmp_path / "warehouse.duckdb"
    shutil.copyfile(duckdb_template, path)
    built = Warehouse(duckdb_url(path))
    yield built
    built.dispose()


@pytest.fixture(params=["duckdb", "postgresql"])
def warehouse(request: pytest.FixtureRequest) -> Warehouse:
    if request.param == "duckdb":
        built: Warehouse = request.getfixturevalue("duck")
        return built
    built = request.getfixturevalue("postgres_warehouse")
    with built.engine.begin() as conn:  # DELETE: much faster than TRUNCATE on tiny tables
        for table in all_tables(built):
            conn.execute(sa.delete(table))
    return built


# --- schema ---------------------------------------------------------------------------------


def catalog(warehouse: Warehouse, query: str, **params: str) -> list[str]:
    with warehouse.engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text(query), params).all()]


def table_names(warehouse: Warehouse, schema: str) -> set[str]:
    query = "SELECT table_name FROM information_schema.tables WHERE table_schema = :schema"
    return set(catalog(warehouse, query, schema=schema))


def column_names(warehouse: Warehouse, schema: str, table: str) -> list[str]:
    query = (
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = :schema AND table_name = :table ORDER BY ordinal_position"
    )
    return catalog(warehouse, query, schema=schema, table=table)


def create_schema_anew(warehouse: Warehouse) -> None:
    """`create_schema` by a new `Warehouse` object, which looks at the existing database again
    (an object remembers that it created its schema)."""
    again = Warehouse(warehouse.engine.url.render_as_string(hide_password=False))
    again.create_schema()
    again.dispose()


def test_schema_has_every_table_and_is_idempotent(warehouse: Warehouse) -> None:
    create_schema_anew(warehouse)
    warehouse.create_schema()

    for schema, expected in {
        "clean": set(DATASETS),
        "history": set(DATASETS),
        "ops": {f"quarantine_{d}" for d in DATASETS}
        | {"issues", "submissions", "current_returns", "withdrawn", "retention_log"},
        "trial": {"allocation"},
        "analysis": set(DATASETS),  # views
    }.items():
        assert table_names(warehouse, schema) == expected
    people_columns = column_names(warehouse, "clean", "people")
    assert people_columns[:4] == ["la_code", "submission_id", "key_id", ROW_NUMBER]
    assert "first_name" not in people_columns and "postcode" not in people_columns
    quarantine = column_names(warehouse, "ops", "quarantine_people")
    assert quarantine[:5] == ["la_code", "submission_id", "key_id", ROW_NUMBER, "rules"]


def test_duckdb_stores_token_columns_uncompressed(tmp_path: Path) -> None:
    warehouse = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    warehouse.create_schema()
    query = (
        "SELECT lower(sql) FROM duckdb_tables() WHERE schema_name = :schema AND table_name = :table"
    )
    with warehouse.engine.connect() as conn:
        history = conn.execute(
            sa.text(query), {"schema": "history", "table": "people"}
        ).scalar_one()
        quarantine = conn.execute(
            sa.text(query), {"schema": "ops", "table": "quarantine_people"}
        ).scalar_one()
    warehouse.dispose()
    for ddl in (history, quarantine):
        for column in ("person_token", "family_token", "nhs_number_token", "upn_token"):
            assert f"{column} varchar using compression uncompressed" in ddl
        assert ddl.count("using compression") == len(token_columns("people")) == 4


def test_postgresql_token_columns_have_no_compression_clause() -> None:
    from sqlalchemy.dialects import postgresql

    layout_table = Warehouse("duckdb://").table("history", "people")
    ddl = str(sa.schema.CreateTable(layout_table).compile(dialect=postgresql.dialect()))
    assert "person_token VARCHAR," in ddl and "COMPRESSION" not in ddl.upper()


def test_a_missing_table_or_view_is_created_again(warehouse: Warehouse) -> None:
    with warehouse.engine.begin() as conn:
        conn.execute(sa.text("DROP VIEW analysis.people"))
        conn.execute(sa.text("DROP TABLE ops.retention_log"))
    create_schema_anew(warehouse)

    assert "people" in table_names(warehouse, "analysis")
    assert "retention_log" in table_names(warehouse, "ops")


def test_a_warehouse_with_clean_tables_gets_clean_views(warehouse: Warehouse) -> None:
    """Before `clean` became views of `history`, it held copies of the current rows."""
    load(warehouse, outcome("people", [person("p1")]), "a", T0)
    with warehouse.engine.begin() as conn:
        conn.execute(sa.text("DROP VIEW analysis.people"))
        conn.execute(sa.text("DROP VIEW clean.people"))
        conn.execute(sa.text("CREATE TABLE clean.people AS SELECT * FROM history.people"))
    create_schema_anew(warehouse)

    kinds = catalog(
        warehouse,
        "SELECT table_schema || ':' || table_type FROM information_schema.tables "
        "WHERE table_name = :table AND table_schema IN ('clean', 'analysis') ORDER BY 1",
        table="people",
    )
    assert kinds == ["analysis:VIEW", "clean:VIEW"]
    assert tokens(warehouse, "clean", "people") == ["p1"]


def test_score15_carries_the_scores(warehouse: Warehouse) -> None:
    columns = set(column_names(warehouse, "clean", "score15"))

    assert {"strengths_adaptability", "total_score", "item_15"} <= columns


# --- replacing a return ---------------------------------------------------------------------


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
        "sha256": "ab" * 32,
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
    warehouse.record_submission([record("r1", None, "duplicate", sha256="dd" * 32)])
    warehouse.record_submission([record("r2", "people", "rejected", sha256="ee" * 32)])
    warehouse.record_submission([record("r3", "people", "held", sha256="cc" * 32)])

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

ALLOCATION = (
    "la_code,la_name,arm,randomised_on\n"
    "201,City of London,SYSTEMIC,2024-07-01\n"
    "305,Bromley,CONTROL,2024-07-01\n"
)


def write(tmp_path: Path, text: str, name: str = "allocation.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_allocation_loads_and_replaces_atomically(warehouse: Warehouse, tmp_path: Path) -> None:
    warehouse.load_allocation(write(tmp_path, ALLOCATION))
    smaller = "la_code,la_name,arm,randomised_on\n201,City of London,CONTROL,2024-07-02\n"

    warehouse.load_allocation(write(tmp_path, smaller, "second.csv"))

    assert warehouse.allocation() == [
        AllocationRow("201", "City of London", "CONTROL", date(2024, 7, 2))
    ]


def test_analysis_view_carries_the_arm(warehouse: Warehouse, tmp_path: Path) -> None:
    warehouse.load_allocation(write(tmp_path, ALLOCATION))
    load(warehouse, people("p1"), "a")
    load(warehouse, people("p9"), "a", la_code="999")

    with warehouse.engine.connect() as conn:
        got = conn.execute(
            sa.text(
                "SELECT la_code, la_name, arm, person_token FROM analysis.people ORDER BY la_code"
            )
        ).all()

    assert [tuple(r) for r in got] == [
        ("201", "City of London", "SYSTEMIC", "p1"),
        ("999", None, None, "p9"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("la,name,arm,date\n201,X,SYSTEMIC,2024-07-01\n", "line 1: the header"),
        ("la_code,la_name,arm,randomised_on\n20,CANARY,SYSTEMIC,2024-07-01\n", "line 2: la_code"),
        ("la_code,la_name,arm,randomised_on\n201,X,CANARY,2024-07-01\n", "line 2: arm"),
        ("la_code,la_name,arm,randomised_on\n201,X,SYSTEMIC,01/07/2024\n", "line 2: randomised"),
        ("la_code,la_name,arm,randomised_on\n201,X,SYSTEMIC,2024-02-30\n", "line 2: randomised"),
        ("la_code,la_name,arm,randomised_on\n201,,SYSTEMIC,2024-07-01\n", "line 2: la_name"),
        ("la_code,la_name,arm,randomised_on\n\n201,X,SYSTEMIC\n", "line 3: expected 4 fields"),
        ("la_code,la_name,arm,randomised_on\n", "no LA"),
        (ALLOCATION + "201,CANARY,CONTROL,2024-07-01\n", "LA number 3 repeats"),
    ],
)
def test_allocation_errors_name_the_line_not_the_value(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(AllocationError, match=message) as raised:
        read_allocation(write(tmp_path, text))

    assert "CANARY" not in str(raised.value)


def test_a_bad_allocation_file_keeps_the_loaded_one(duck: Warehouse, tmp_path: Path) -> None:
    duck.load_allocation(write(tmp_path, ALLOCATION))

    with pytest.raises(AllocationError):
        duck.load_allocation(write(tmp_path, ALLOCATION + "201,X,CONTROL,2024-07-01\n", "b.csv"))

    assert [row.la_code for row in duck.allocation()] == ["201", "305"]


def test_allocation_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ALLOCATION.encode())

    assert len(read_allocation(path)) == 2


# --- engines --------------------------------------------------------------------------------


def test_repr_hides_the_password() -> None:
    warehouse = Warehouse("postgresql+psycopg://trial:s3cret-pw@127.0.0.1:5432/trial")

    assert "s3cret-pw" not in repr(warehouse)


def test_an_unsupported_dialect_has_no_bulk_path() -> None:
    with pytest.raises(NotImplementedError, match="sqlite"):
        Warehouse("sqlite://")


HOLD_LOCK = """
import sys, time, duckdb
connection = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.close()
"""


def test_waits_while_another_process_holds_the_duckdb_file(duck: Warehouse) -> None:
    path = duck.engine.url.database
    assert path is not None
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, path, "0.5"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()

        assert not duck.is_duplicate("201", "ab" * 32)

        assert time.monotonic() - started > 0.2  # it waited for the other process
    finally:
        holder.wait(timeout=30)


TRY_LOCK = """
import sys, duckdb
try:
    duckdb.connect(sys.argv[1]).close()
except duckdb.IOException:
    print("busy")
else:
    print("free")
"""


def _seen_from_another_process(path: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", TRY_LOCK, path], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_held_open_keeps_the_duckdb_file_open_between_transactions(duck: Warehouse) -> None:
    path = duck.engine.url.database
    assert path is not None

    with duck.held_open():
        assert not duck.is_duplicate("201", "ab" * 32)  # work goes on through other connections
        held = _seen_from_another_process(path)
    released = _seen_from_another_process(path)

    assert (held, released) == ("busy", "free")


def test_errors_are_warehouse_errors(duck: Warehouse) -> None:
    with duck.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE ops.submissions"))

    with pytest.raises(WarehouseError, match="rolled back") as raised:
        duck.is_duplicate("201", "ab" * 32)

    assert raised.value.__context__ is None
