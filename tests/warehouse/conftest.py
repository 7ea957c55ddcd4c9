"""The warehouses the test_warehouse_* and allocation tests run on: DuckDB, and PostgreSQL in a
database created for each test module and dropped after it when the local server answers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from e2e import postgres_database, require_postgres
from loads import all_tables

from ingest.warehouse import Warehouse, duckdb_url

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
