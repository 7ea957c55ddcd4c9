"""The warehouse's layout: every table and view, created again when missing, token columns.

Every behaviour test runs on DuckDB and, when the local server answers, on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from loads import (
    T0,
    load,
    outcome,
    person,
    tokens,
)

from ingest.warehouse import (
    Warehouse,
    token_columns,
)
from schemas.datasets import DATASETS
from schemas.outcome import ROW_NUMBER


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
        | {"issues", "submissions", "current_returns", "withdrawn", "retention_log", "taken_files"},
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
