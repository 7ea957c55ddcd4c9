"""The production shape: Dagster's own storage and the warehouse both on PostgreSQL
(`dagster-postgres.yaml`, chosen by TRIAL_DAGSTER_PG_URL). Skipped without a server on
127.0.0.1:5432."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from dagster import DagsterInstance
from e2e import libpq_url, postgres_available, postgres_database
from test_dagster_definitions import TrialService, people_csv, service

from ingest.settings import environment

__all__ = ["service"]
pytestmark = pytest.mark.slow


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    """Two databases of their own (Dagster's storage, the warehouse), dropped afterwards."""
    if not postgres_available():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    with ExitStack() as stack:
        dagster_url = stack.enter_context(postgres_database("trial_dagster_test"))
        warehouse_url = stack.enter_context(postgres_database("trial_dagster_test"))
        yield libpq_url(dagster_url), warehouse_url


def test_a_return_loads_with_dagster_and_the_warehouse_on_postgresql(
    service: TrialService, databases: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dagster_url, warehouse_url = databases
    for name, value in (
        ("TRIAL_DAGSTER_PG_URL", dagster_url),
        ("TRIAL_WAREHOUSE_URL", warehouse_url),
    ):
        monkeypatch.setenv(name, value)
        service.env[name] = value
    (service.dagster_home / "dagster.yaml").unlink()  # chosen afresh by `run_once`
    service.deliver("201", "people.csv", people_csv(4))

    summary = service.run()

    assert [f.status for f in summary.files] == ["accepted"]
    assert len(service.clean_people("201")) == 4
    assert not list(service.dagster_home.glob("**/*.db"))  # no SQLite storage was made
    with environment(service.env), DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.get_run_by_id(summary.files[0].run_id) is not None
