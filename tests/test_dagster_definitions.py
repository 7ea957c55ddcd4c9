"""The code location loads (with or without an allocation), wires what the UI shows, and the
instance configuration is the service's. Also the `service` fixture the other
`test_dagster_*` modules use: a trial on temp folders with a real DAGSTER_HOME."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    Definitions,
    EnvVar,
    asset,
    evaluate_automation_conditions,
    materialize,
)

# Dagster's own storage classes, reading what the subclasses wrote: no public API has them.
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage
from dagster._core.storage.runs import SqliteRunStorage

from ingest.assets.partitions import allocated_las
from ingest.definitions import build_definitions
from ingest.instance import prepare_dagster_home
from ingest.jobs import ALLOCATION_KEY, RETURN_JOB, clean_asset_key
from ingest.outcomes import RunSummary
from ingest.resources import (
    DropResource,
    ServiceSettings,
    TrialKeysResource,
    WarehouseResource,
    build_resources,
)
from ingest.runner import run_once
from ingest.sensors import SENSOR_NAME
from ingest.settings import Settings
from ingest.warehouse import Warehouse
from pseudonymise.keys import new_key_text
from schemas.datasets import DATASETS

ALLOCATED = ("201", "202", "203")
ALLOCATION_CSV = "la_code,la_name,arm,randomised_on\n" + "".join(
    f"{code},Authority {code},{arm},2024-07-01\n"
    for code, arm in zip(ALLOCATED, ("SYSTEMIC", "CONTROL", "SYSTEMIC"), strict=True)
)
FIRST_UPLOAD_NS = 1_750_000_000 * 10**9


def people_csv(rows: int, *, first: int = 1, la_code: str | None = None) -> bytes:
    """A valid `people` return of `rows` children; names are planted free text."""
    header = "person_id,family_id,role,date_of_birth,sex,first_name"
    header += ",la_code" if la_code else ""
    lines = [header]
    for number in range(first, first + rows):
        birth = date(2012, 1, 1) + timedelta(days=number)
        line = f"PER{number:05d},FAM{number // 3:05d},CHILD,{birth.isoformat()},F,Name{number}"
        lines.append(line + (f",{la_code}" if la_code else ""))
    return ("\n".join(lines) + "\n").encode()


def episodes_csv(rows: int, *, newest: date) -> bytes:
    """A valid `episodes` return whose latest service date is `newest`."""
    lines = ["episode_id,family_id,keyworker_id,referral_date,start_date"]
    for number in range(rows):
        start = newest - timedelta(days=number)
        lines.append(
            f"EP{number:05d},FAM{number:05d},KW001,{start.isoformat()},{start.isoformat()}"
        )
    return ("\n".join(lines) + "\n").encode()


@dataclass
class TrialService:
    """One trial on temp folders: allocation, drop, landing, warehouse and DAGSTER_HOME."""

    root: Path
    env: dict[str, str]
    uploads: int = 0
    _defs: Definitions | None = None

    @property
    def drop(self) -> Path:
        return self.root / "drop"

    @property
    def dagster_home(self) -> Path:
        return Path(self.env["DAGSTER_HOME"])

    def deliver(self, la_code: str, name: str, content: bytes) -> Path:
        """Drop a file; each upload is a second later than the one before."""
        folder = self.drop / la_code
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_bytes(content)
        self.uploads += 1
        moment = FIRST_UPLOAD_NS + self.uploads * 10**9
        os.utime(path, ns=(moment, moment))
        return path

    def inbox(self, la_code: str) -> list[str]:
        folder = self.drop / la_code
        return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []

    def reports(self, la_code: str) -> list[Path]:
        return sorted((self.drop / la_code / "reports").glob("*.txt"))

    def run(self) -> RunSummary:
        return run_once(self.env)

    def definitions(self) -> Definitions:
        """Built once per test, as a code location is (call `reload` after changing env)."""
        if self._defs is None:
            self._defs = build_definitions(self.env)
        return self._defs

    def reload(self) -> None:
        self._defs = None

    def instance(self) -> DagsterInstance:
        return DagsterInstance.get()

    def warehouse(self) -> Warehouse:
        return Warehouse(self.env["TRIAL_WAREHOUSE_URL"])

    def clean_people(self, la_code: str) -> list[str]:
        """The LA's person tokens in clean.people."""
        import sqlalchemy as sa

        warehouse = self.warehouse()
        table = warehouse.table("clean", "people")
        query = sa.select(table.c.person_token).where(table.c.la_code == la_code)
        with warehouse.engine.connect() as conn:
            tokens = sorted(row[0] for row in conn.execute(query))
        warehouse.dispose()
        return tokens


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TrialService]:
    for name in list(os.environ):
        if name.startswith(("TRIAL_", "DAGSTER_")):
            monkeypatch.delenv(name)
    (tmp_path / "allocation.csv").write_text(ALLOCATION_CSV)
    for code in ALLOCATED:
        (tmp_path / "drop" / code).mkdir(parents=True)
    settings = {
        "TRIAL_HOME": str(tmp_path / "home"),
        "TRIAL_DROP_URL": str(tmp_path / "drop"),
        "TRIAL_LANDING_URL": str(tmp_path / "landing"),
        "TRIAL_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'home' / 'warehouse.duckdb'}",
        "TRIAL_ALLOCATION_FILE": str(tmp_path / "allocation.csv"),
        "TRIAL_PSEUDONYM_KEY": new_key_text(),
        "TRIAL_LANDING_KEY": new_key_text(),
        "DAGSTER_HOME": str(tmp_path / "home" / "dagster"),
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    prepare_dagster_home(Settings.from_env(settings))
    yield TrialService(root=tmp_path, env=dict(os.environ))


# --- the code location -----------------------------------------------------------------------


def test_definitions_partition_the_clean_assets_by_allocated_la(service: TrialService) -> None:
    defs = service.definitions()
    Definitions.validate_loadable(defs)
    job = defs.resolve_job_def(RETURN_JOB)

    assert job.partitions_def is not None
    assert job.partitions_def.get_partition_keys() == list(ALLOCATED)
    graph = defs.resolve_asset_graph()
    clean_keys = {clean_asset_key(name) for name in DATASETS}
    assert clean_keys | {ALLOCATION_KEY} <= set(graph.get_all_asset_keys())
    assert all(graph.get(key).group_name == "warehouse" for key in clean_keys)


def test_every_dataset_has_the_three_blocking_checks(service: TrialService) -> None:
    graph = service.definitions().resolve_asset_graph()

    for name in DATASETS:
        checks = {
            key.name: graph.get_check_spec(key)
            for key in graph.asset_check_keys
            if key.asset_key == clean_asset_key(name)
        }
        assert set(checks) == {"has_valid_rows", "row_count_not_halved", "not_older_than_previous"}
        assert all(spec.blocking for spec in checks.values())


def test_definitions_load_without_an_allocation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIAL_ALLOCATION_FILE", raising=False)

    defs = build_definitions({})

    Definitions.validate_loadable(defs)
    assert defs.resolve_sensor_def(SENSOR_NAME) is not None
    assert (
        allocated_las(Settings.from_env({})).problem
        == "TRIAL_ALLOCATION_FILE is not set: no LA inbox is watched"
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("la_name,arm\nA,CONTROL\n", "line 1: the header has no la_code column"),
        ("la_code,la_name\n20X,Secretshire\n", "line 2: la_code is not a three-digit code"),
        ("la_code\n201\n201\n", "an la_code is repeated"),
        ("la_code\n", "the allocation holds no LA"),
    ],
)
def test_a_bad_allocation_leaves_no_partitions_and_says_why(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "allocation.csv"
    path.write_text(content)

    allocated = allocated_las(Settings.from_env({"TRIAL_ALLOCATION_FILE": str(path)}))

    assert allocated.la_codes == ()
    assert allocated.problem == f"TRIAL_ALLOCATION_FILE: {problem}"
    assert "Secretshire" not in allocated.problem


def test_settings_from_the_environment_reach_the_ui_as_variable_names() -> None:
    env = {"TRIAL_PSEUDONYM_KEY": new_key_text(), "TRIAL_DROP_URL": "/srv/drop"}

    resources = build_resources(env)

    settings, keys, drop, warehouse = (
        resources[k] for k in ("settings", "trial_keys", "drop", "warehouse")
    )
    assert isinstance(settings, ServiceSettings)
    assert isinstance(keys, TrialKeysResource)
    assert isinstance(drop, DropResource)
    assert isinstance(warehouse, WarehouseResource)
    assert keys.settings is drop.settings is warehouse.settings is settings
    assert isinstance(settings.trial_pseudonym_key, EnvVar)
    assert settings.trial_pseudonym_key == "TRIAL_PSEUDONYM_KEY"  # the name, never the key
    assert settings.trial_pseudonym_key_file == ""
    assert settings.trial_drop_url == "TRIAL_DROP_URL"
    assert settings.trial_warehouse_url == ""  # unset: the DuckDB default under TRIAL_HOME


# --- the instance ----------------------------------------------------------------------------


def test_the_instance_keeps_its_storage_home_and_no_telemetry_or_compute_logs(
    service: TrialService,
) -> None:
    with service.instance() as instance:
        assert instance.root_directory == str(service.dagster_home)
        assert not instance.telemetry_enabled
        assert type(instance.compute_log_manager).__name__ == "NoOpComputeLogManager"
        assert type(instance.run_storage).__name__ == "CachedEngineSqliteRunStorage"
        assert type(instance.event_log_storage).__name__ == "CachedEngineSqliteEventLogStorage"
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None
        assert queue.max_concurrent_runs == 1


def test_an_operators_own_instance_configuration_is_left_alone(tmp_path: Path) -> None:
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    prepare_dagster_home(Settings.from_env({"DAGSTER_HOME": str(home)}))

    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_postgres_storage_is_chosen_by_the_environment(tmp_path: Path) -> None:
    env = {"DAGSTER_HOME": str(tmp_path), "TRIAL_DAGSTER_PG_URL": "postgresql://x@db/dagster"}

    prepare_dagster_home(Settings.from_env(env))

    text = (tmp_path / "dagster.yaml").read_text()
    assert "postgres_url:\n      env: TRIAL_DAGSTER_PG_URL" in text
    assert "enabled: false" in text


def test_a_new_deployment_loads_the_allocation_once(service: TrialService) -> None:
    defs = service.definitions()

    with DagsterInstance.ephemeral() as instance:
        first = evaluate_automation_conditions(defs=defs, instance=instance)
        second = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)

    assert first.get_requested_partitions(ALLOCATION_KEY) == {None}
    assert second.total_requested == 0  # requested already: not again while it runs
    assert AssetKey(["trial", "allocation"]) == ALLOCATION_KEY


def test_dagsters_own_storage_classes_read_what_the_instance_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    @asset
    def counted() -> int:
        return 1

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    home = prepare_dagster_home(Settings.from_env({"DAGSTER_HOME": str(tmp_path)}))
    with DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.event_log_storage).__name__ == "CachedEngineSqliteEventLogStorage"
        result = materialize([counted], instance=instance)
        assert result.success
        written = instance.get_records_for_run(result.run_id).records

    runs = SqliteRunStorage.from_local(str(home))
    events = ConsolidatedSqliteEventLogStorage(str(home))
    assert runs.get_run_ids() == [result.run_id]
    read = events.get_records_for_run(result.run_id).records
    assert [r.storage_id for r in read] == [r.storage_id for r in written]
    assert events.get_latest_materialization_events([AssetKey("counted")])
