"""Retention: expired raw files are deleted from the landing store (local and S3) and logged."""

from __future__ import annotations

import builtins
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from servers import S3Bucket
from test_dagster_definitions import TrialService, people_csv, service

from ingest.definitions import build_definitions
from ingest.retention import apply_retention
from ingest.schedules import RETENTION_JOB, RETENTION_SCHEDULE
from ingest.settings import (
    DEFAULT_RETENTION_DAYS,
    ConfigurationError,
    Settings,
    environment,
)
from ingest.settings import RETENTION_DAYS as RETENTION_DAYS_VARIABLE
from ingest.storage.landing import (
    LandedFile,
    Landing,
    LandingError,
    LandingStore,
    open_landing,
    submission_id_of,
)
from ingest.storage.landing.s3 import S3LandingStore, open_s3_landing
from ingest.warehouse import Warehouse, duckdb_url
from pseudonymise.keys import load_key, new_key_text, parse_key_text

__all__ = ["service"]

NOW = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
DAYS = 730
EXPIRED_AGES = (900, 731)  # days before NOW
KEPT_AGES = (729, 1)


def land_files(landing: Landing, ages: tuple[int, ...], la_code: str = "201") -> list[str]:
    ids = []
    for number, age in enumerate(ages):
        content = people_csv(2, first=number * 10 + 1)
        submission_id = submission_id_of(la_code, landing.content_hmac(la_code, content))
        landing.put(submission_id, la_code, content, NOW - timedelta(days=age))
        ids.append(submission_id)
    return ids


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(duckdb_url(tmp_path / "warehouse.duckdb"))


@pytest.fixture
def local_landing(tmp_path: Path) -> LandingStore:
    return LandingStore(tmp_path / "landing", parse_key_text(new_key_text()))


def landed_ids(landing: Landing) -> set[str]:
    return {f.submission_id for f in landing.list()}


def check_retention(landing: Landing, warehouse: Warehouse) -> None:
    expired = land_files(landing, EXPIRED_AGES)
    kept = land_files(landing, KEPT_AGES, la_code="202")

    dry = apply_retention(landing, warehouse, now=NOW, retention_days=DAYS, dry_run=True)
    assert {f.submission_id for f in dry.deleted} == set(expired)
    assert landed_ids(landing) == {*expired, *kept}

    result = apply_retention(landing, warehouse, now=NOW, retention_days=DAYS)

    assert result.counts == {"deleted": 2, "failed": 0}
    assert landed_ids(landing) == set(kept)
    log = warehouse.retention_log()
    # One deletion time: the log is then in submission id order, which keyed ids make random.
    assert sorted((r["la_code"], r["submission_id"], r["received_at"]) for r in log) == sorted(
        ("201", s, NOW - timedelta(days=a)) for s, a in zip(expired, EXPIRED_AGES, strict=True)
    )
    assert all(r["deleted_at"] == NOW for r in log)
    with pytest.raises(LandingError):
        landing.get("201", expired[0])

    again = apply_retention(landing, warehouse, now=NOW + timedelta(hours=1), retention_days=DAYS)

    assert again.counts == {"deleted": 0, "failed": 0}
    assert len(warehouse.retention_log()) == 2


def test_retention_deletes_and_logs_expired_files_on_a_local_store(
    local_landing: LandingStore, warehouse: Warehouse
) -> None:
    check_retention(local_landing, warehouse)
    leftovers = [p.name for p in local_landing.root.rglob("*") if p.is_file()]
    assert len(leftovers) == 2 * len(KEPT_AGES)  # blob + sidecar of each kept file


def test_retention_deletes_and_logs_expired_files_on_s3(
    s3_bucket: S3Bucket, warehouse: Warehouse
) -> None:
    landing = open_s3_landing(s3_bucket.url("landing"), parse_key_text(new_key_text()))
    assert isinstance(landing, S3LandingStore)
    check_retention(landing, warehouse)
    assert len(s3_bucket.object_keys("landing/")) == 2 * len(KEPT_AGES)


class FailingOnce:
    """A landing store whose delete fails for one submission."""

    def __init__(self, inner: LandingStore, failing: str) -> None:
        self._inner = inner
        self._failing = failing

    def older_than(self, cutoff: datetime) -> builtins.list[LandedFile]:
        return self._inner.older_than(cutoff)

    def delete(self, la_code: str, submission_id: str) -> None:
        if submission_id == self._failing:
            raise PermissionError(f"/secret/path/{submission_id}")
        self._inner.delete(la_code, submission_id)


def test_a_failure_on_one_file_is_recorded_and_the_others_are_deleted(
    local_landing: LandingStore, warehouse: Warehouse
) -> None:
    first, second = land_files(local_landing, EXPIRED_AGES)
    failing = FailingOnce(local_landing, first)

    result = apply_retention(failing, warehouse, now=NOW, retention_days=DAYS)  # type: ignore[arg-type]

    assert result.counts == {"deleted": 1, "failed": 1}
    assert [(f.submission_id, f.error) for f in result.failed] == [(first, "PermissionError")]
    assert landed_ids(local_landing) == {first}
    assert [r["submission_id"] for r in warehouse.retention_log()] == [second]

    retried = apply_retention(local_landing, warehouse, now=NOW, retention_days=DAYS)

    assert retried.counts == {"deleted": 1, "failed": 0}
    assert {r["submission_id"] for r in warehouse.retention_log()} == {first, second}


def test_the_retention_period_comes_from_the_environment() -> None:
    assert Settings.from_env({}).retention_days == DEFAULT_RETENTION_DAYS == 730
    assert Settings.from_env({RETENTION_DAYS_VARIABLE: " 90 "}).retention_days == 90
    for bad in ("0", "-5", "1.5", "two years"):
        with pytest.raises(ConfigurationError, match=RETENTION_DAYS_VARIABLE):
            Settings.from_env({RETENTION_DAYS_VARIABLE: bad})


def test_the_retention_schedule_runs_daily_by_default() -> None:
    defs = build_definitions({})
    schedule = defs.resolve_schedule_def(RETENTION_SCHEDULE)
    assert schedule.cron_schedule == "30 2 * * *"
    assert schedule.default_status.value == "RUNNING"
    assert schedule.job_name == RETENTION_JOB


@pytest.mark.parametrize("store", ["local", "s3"])
def test_the_retention_job_runs_in_dagster_and_shows_counts_only(
    service: TrialService,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    store: str,
) -> None:
    if store == "s3":
        bucket: S3Bucket = request.getfixturevalue("s3_bucket")
        monkeypatch.setenv("TRIAL_LANDING_URL", bucket.url("landing"))
        service.env = dict(os.environ)
        service.reload()
    landing = open_landing(service.env["TRIAL_LANDING_URL"], load_key("LANDING", service.env))
    now = datetime.now(UTC)
    expired = land_files(landing, (800, 400))
    kept = land_files(landing, (3,), la_code="202")
    service.env[RETENTION_DAYS_VARIABLE] = "365"  # set where the code location loads
    service.reload()
    job = service.definitions().resolve_job_def(RETENTION_JOB)

    with environment(service.env), DagsterInstance.get() as instance:
        result = job.execute_in_process(instance=instance)
        run = instance.get_run_by_id(result.run_id)

    assert result.success
    assert run is not None and run.status is DagsterRunStatus.SUCCESS
    [output] = result.get_step_success_events()  # one op
    assert output.step_key == "delete_expired_raw_files"
    [materialised] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in materialised.step_output_data.metadata.items()}
    assert metadata == {"deleted": 2, "failed": 0, "retention_days": 365}
    assert landed_ids(landing) == set(kept)
    warehouse = service.warehouse()
    assert {r["submission_id"] for r in warehouse.retention_log()} == set(expired)
    assert all(r["deleted_at"] >= now - timedelta(minutes=1) for r in warehouse.retention_log())
    warehouse.dispose()


def test_the_cli_counts_and_deletes(
    local_landing: LandingStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ingest.cli import main

    key_text = new_key_text()
    landing = LandingStore(local_landing.root, parse_key_text(key_text))
    ages_days = (3000, 2)
    ids = land_files(landing, ages_days)  # relative to NOW, which is the past for the CLI
    monkeypatch.setenv("TRIAL_LANDING_URL", str(landing.root))
    monkeypatch.setenv("TRIAL_LANDING_KEY", key_text)
    monkeypatch.setenv("TRIAL_WAREHOUSE_URL", duckdb_url(tmp_path / "cli.duckdb"))
    monkeypatch.delenv("TRIAL_LANDING_KEY_FILE", raising=False)
    monkeypatch.delenv(RETENTION_DAYS_VARIABLE, raising=False)

    assert main(["retention", "--dry-run"]) == 0
    assert "1 landed raw file(s)" in capsys.readouterr().out
    assert landed_ids(landing) == set(ids)

    assert main(["retention"]) == 0

    out = capsys.readouterr().out
    assert "730 days" in out and "1 raw file(s) deleted" in out
    assert key_text not in out
    assert landed_ids(landing) == {ids[1]}
