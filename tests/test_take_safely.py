"""Taking files safely: a `trial-ingest run` killed (SIGKILL) at any step of processing a file
loses nothing, and the next run converges to what an undisturbed run gives: the same warehouse
rows, audit rows and LA reports, and an empty inbox.

The killed run is a child process (`killed_run.py`) that kills itself at the chosen step.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.utils import make_new_run_id
from e2e import postgres_database, require_postgres
from test_dagster_definitions import ALLOCATION_CSV, TrialService, people_csv

from ingest.instance import prepare_dagster_home
from ingest.jobs import DROP_OBJECT_TAG, LA_TAG, RETURN_JOB
from ingest.processing import Services, process_received, take_from_drop
from ingest.runner import run_once
from ingest.settings import Settings, environment
from ingest.storage.drop import LocalFolderDrop
from ingest.storage.landing import LandingStore
from ingest.warehouse import Warehouse, duckdb_url
from pseudonymise.keys import new_key_text, parse_key_text
from pseudonymise.tokens import Tokeniser
from schemas.datasets import DATASETS

pytestmark = pytest.mark.slow

KEYS = {"TRIAL_PSEUDONYM_KEY": new_key_text(), "TRIAL_LANDING_KEY": new_key_text()}
KILLED_RUN = Path(__file__).with_name("killed_run.py")

# Upload order: 201 accepted, 201 held (fewer than half the rows), 202 rejected (its rows name
# LA 201), 203 accepted, 203 the same bytes again (a duplicate).
SAME = people_csv(4, first=200)
FILES = [
    ("201", "people.csv", people_csv(6)),
    ("201", "people_short.csv", people_csv(2, first=100)),
    ("202", "wrong_la.csv", people_csv(3, la_code="201")),
    ("203", "a.csv", SAME),
    ("203", "a_copy.csv", SAME),
]


def trial(root: Path, warehouse_url: str | None = None) -> TrialService:
    """A trial on `root` under the module's keys, its files delivered (the same upload times in
    every trial, so the same fingerprints); its warehouse a DuckDB file unless given."""
    (root / "allocation.csv").write_text(ALLOCATION_CSV)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "TRIAL_HOME": str(root / "home"),
        "TRIAL_DROP_URL": str(root / "drop"),
        "TRIAL_LANDING_URL": str(root / "landing"),
        "TRIAL_WAREHOUSE_URL": warehouse_url or f"duckdb:///{root / 'home' / 'warehouse.duckdb'}",
        "TRIAL_ALLOCATION_FILE": str(root / "allocation.csv"),
        "DAGSTER_HOME": str(root / "home" / "dagster"),
        **KEYS,
    }
    prepare_dagster_home(Settings.from_env(env))
    service = TrialService(root=root, env=env)
    for la_code in ("201", "202", "203"):
        (service.drop / la_code).mkdir(parents=True, exist_ok=True)
    for la_code, name, content in FILES:
        service.deliver(la_code, name, content)
    return service


@dataclass(frozen=True)
class State:
    """What a trial came to, without times (received and processed) or receipt ids."""

    tables: dict[str, list[tuple[Any, ...]]]
    audit: list[tuple[Any, ...]]
    reports: dict[str, list[str]]
    inbox: dict[str, list[str]]


def state(service: TrialService) -> State:
    warehouse = service.warehouse()
    try:
        tables = {}
        with warehouse.engine.connect() as conn:
            for schema in ("clean", "history"):
                for dataset in DATASETS:
                    table = warehouse.table(schema, dataset)
                    rows = conn.execute(sa.select(table)).all()
                    tables[f"{schema}.{dataset}"] = sorted(tuple(map(str, r)) for r in rows)
            current = warehouse.table("ops", "current_returns")
            tables["current"] = sorted(
                (r.la_code, r.dataset, r.submission_id) for r in conn.execute(sa.select(current))
            )
        audit = sorted(
            tuple(
                map(
                    str,
                    (
                        r.la_code,
                        r.submission_id,
                        r.dataset,
                        r.status,
                        r.reason,
                        r.rows_received,
                        r.rows_loaded,
                        r.rows_rejected,
                        r.content_hmac,
                        r.size_bytes,
                    ),
                )
            )
            for r in warehouse.submissions()
        )
    finally:
        warehouse.dispose()
    reports = {
        la: sorted(_without_times(p.read_text()) for p in service.reports(la))
        for la in ("201", "202", "203")
    }
    return State(tables, audit, reports, {la: service.inbox(la) for la in ("201", "202", "203")})


def _without_times(report: str) -> str:
    return "\n".join(line for line in report.splitlines() if not line.startswith("Received:"))


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory: pytest.TempPathFactory) -> State:
    return undisturbed_run(trial(tmp_path_factory.mktemp("undisturbed")))


def undisturbed_run(service: TrialService) -> State:
    summary = run_once(service.env)
    assert [f.status for f in summary.files] == [
        "accepted",
        "held",
        "rejected",
        "accepted",
        "duplicate",
    ]
    return state(service)


@pytest.fixture
def fresh_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("TRIAL_", "DAGSTER_")):
            monkeypatch.delenv(name)
    yield


def killed_run(service: TrialService, step: str, call: int) -> None:
    """`trial-ingest run` in a child process that kills itself at `step`'s `call`-th call."""
    done = subprocess.run(
        [sys.executable, str(KILLED_RUN), step, str(call)],
        env=service.env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]


KILL_POINTS = [
    ("landed", 1),
    ("checking", 1),
    ("loaded", 1),
    ("reported", 1),
    ("audited", 1),
    ("landed", 2),  # the held return
    ("checking", 3),  # the rejected file
    ("loaded", 2),
    ("audited", 3),
    ("reported", 5),  # the duplicate: nothing of it recorded
    ("audited", 5),  # the duplicate: audited and reported, still in the inbox
]


@pytest.mark.parametrize(("step", "call"), KILL_POINTS)
@pytest.mark.usefixtures("fresh_environment")
def test_a_run_killed_at_any_step_loses_nothing_and_the_next_run_converges(
    tmp_path: Path, undisturbed: State, step: str, call: int
) -> None:
    service = trial(tmp_path)

    killed_run(service, step, call)
    run_once(service.env)

    after = state(service)
    assert after.inbox == {"201": [], "202": [], "203": []}
    assert after.audit == undisturbed.audit
    assert after.reports == undisturbed.reports
    assert after.tables == undisturbed.tables


@pytest.mark.usefixtures("fresh_environment")
def test_the_next_run_says_what_became_of_a_file_whose_run_was_killed(tmp_path: Path) -> None:
    service = trial(tmp_path)
    killed_run(service, "checking", 1)

    summary = run_once(service.env)

    # The killed run's file first, finished from the landing store, then the others.
    assert [(f.la_code, f.status) for f in summary.files] == [
        ("201", "accepted"),
        ("201", "held"),
        ("202", "rejected"),
        ("203", "accepted"),
        ("203", "duplicate"),
    ]


@pytest.mark.usefixtures("fresh_environment")
def test_a_landed_file_whose_run_is_in_progress_elsewhere_is_left_to_that_run(
    tmp_path: Path,
) -> None:
    """A run the UI's daemon started (no `trial-ingest run` process of this host behind it) may
    be processing the landed file: `run` leaves that LA's landed files alone."""
    service = trial(tmp_path)
    killed_run(service, "landed", 1)  # 201's first file landed, its run's process gone
    [fingerprint] = [
        o.fingerprint for o in drop_of(service).list_inbox("201") if o.size == len(FILES[0][2])
    ]
    with environment(service.env), DagsterInstance.get() as instance:
        instance.add_run(
            DagsterRun(
                job_name=RETURN_JOB,
                run_id=make_new_run_id(),
                status=DagsterRunStatus.STARTED,
                tags={LA_TAG: "201", DROP_OBJECT_TAG: fingerprint},
            )
        )

    summary = run_once(service.env)

    assert "people.csv" in service.inbox("201")
    assert [(f.la_code, f.status) for f in summary.files if f.la_code != "201"] == [
        ("202", "rejected"),
        ("203", "accepted"),
        ("203", "duplicate"),
    ]
    warehouse = service.warehouse()
    assert warehouse.submissions_with_outcome() == {f.submission_id for f in summary.files}
    warehouse.dispose()


def drop_of(service: TrialService) -> LocalFolderDrop:
    return LocalFolderDrop(service.drop, parse_key_text(KEYS["TRIAL_LANDING_KEY"]))


# --- on PostgreSQL ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def undisturbed_on_postgresql(tmp_path_factory: pytest.TempPathFactory) -> Iterator[State]:
    require_postgres()
    with postgres_database("trial_take_test") as url:
        yield undisturbed_run(trial(tmp_path_factory.mktemp("undisturbed_pg"), url))


@pytest.mark.parametrize(
    ("step", "call"), [("checking", 1), ("loaded", 1), ("reported", 1), ("audited", 5)]
)
@pytest.mark.usefixtures("fresh_environment")
def test_on_postgresql_a_killed_run_loses_nothing_and_the_next_run_converges(
    tmp_path: Path, undisturbed_on_postgresql: State, step: str, call: int
) -> None:
    with postgres_database("trial_take_test") as url:
        service = trial(tmp_path, url)

        killed_run(service, step, call)
        run_once(service.env)

        after = state(service)
    assert after.inbox == {"201": [], "202": [], "203": []}
    assert after.audit == undisturbed_on_postgresql.audit
    assert after.reports == undisturbed_on_postgresql.reports
    assert after.tables == undisturbed_on_postgresql.tables


# --- processing, without Dagster ------------------------------------------------------------


def test_a_file_stays_in_the_inbox_until_its_outcome_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the load (here: the disk is full when the report is written) leaves the
    file where it was; taken again, it is processed once, as it would have been."""
    key = parse_key_text(KEYS["TRIAL_PSEUDONYM_KEY"])
    (tmp_path / "drop" / "201").mkdir(parents=True)
    (tmp_path / "drop" / "201" / "people.csv").write_bytes(people_csv(6))
    drop = LocalFolderDrop(tmp_path / "drop", key)
    warehouse = Warehouse(duckdb_url(tmp_path / "warehouse.duckdb"))
    services = Services(
        landing=LandingStore(tmp_path / "landing", parse_key_text(KEYS["TRIAL_LANDING_KEY"])),
        warehouse=warehouse,
        tokeniser=Tokeniser(key),
        drop=drop,
    )
    write_report = LocalFolderDrop.write_report

    def disk_full(*args: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LocalFolderDrop, "write_report", disk_full)
    [listed] = drop.list_inbox("201")

    received = take_from_drop(services, "201", listed.fingerprint)
    assert received is not None
    with pytest.raises(OSError):
        process_received(services, received)

    assert [o.fingerprint for o in drop.list_inbox("201")] == [listed.fingerprint]
    assert warehouse.submissions("201") == []
    monkeypatch.setattr(LocalFolderDrop, "write_report", write_report)
    again = take_from_drop(services, "201", listed.fingerprint)
    assert again is not None
    result = process_received(services, again)
    assert result.status.value == "accepted"
    assert drop.list_inbox("201") == []
    assert [r.status for r in warehouse.submissions("201")] == ["accepted"]
    assert len(list((tmp_path / "drop" / "201" / "reports").iterdir())) == 1
    warehouse.dispose()


def test_abandoned_landing_parts_and_spools_are_removed_when_a_run_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith(("TRIAL_", "DAGSTER_")):
            monkeypatch.delenv(name)
    service = trial(tmp_path)
    run_once(service.env)
    landing = tmp_path / "landing" / "201"
    old_part, new_part = landing / ".landing-old.part", landing / ".landing-new.part"
    for part in (old_part, new_part):
        part.write_bytes(b"ciphertext of a killed write")
    two_hours_ago = time.time() - 7200
    os.utime(old_part, (two_hours_ago, two_hours_ago))
    spool = tmp_path / "home" / "warehouse.duckdb.loading-abc123"
    spool.mkdir()
    (spool / "people-000000.parquet").write_bytes(b"rows of a killed load")

    run_once(service.env)

    assert not old_part.exists()
    assert new_part.exists()  # perhaps another process's write in progress: kept
    assert not spool.exists()
