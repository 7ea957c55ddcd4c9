"""The same end-to-end run on every production path: {local, S3, SFTP} drops x {DuckDB,
PostgreSQL} warehouses, against real servers on loopback (moto's S3 API, an asyncssh SFTP
server and OpenSSH's sshd, the local PostgreSQL).

Three LAs each drop one workbook (every dataset, canary values planted in every identifier and
free-text field, and a row with a canary in every field), one LA also a garbage file; the file
names carry a canary too. `run_once` must then leave exactly what it leaves on the embedded
default (local folder, DuckDB, local landing): the same rows per LA and table, audit outcomes
and tokens; reports in each LA's `reports/`; empty inboxes; a landing store of ciphertext only
(the S3 case lands in an `s3://` bucket). And no canary anywhere the service wrote: warehouse,
Dagster's storage (DAGSTER_HOME, or its PostgreSQL database), landing store, reports, process
output and logs, and PostgreSQL's own server log.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import psycopg
import pytest
from e2e import (
    LA_DATASETS,
    PG_ADMIN,
    CanaryTrial,
    Captured,
    DropSite,
    FolderDropSite,
    FolderLandingSite,
    LandingSite,
    PostgresServerLog,
    S3DropSite,
    S3LandingSite,
    WarehouseSnapshot,
    canary_trial,
    captured_output,
    files_holding,
    landed_plaintexts,
    libpq_url,
    new_bucket,
    postgres_available,
    postgres_database,
    postgres_tables_holding,
    warehouse_holding,
    warehouse_snapshot,
)
from servers import OpenSshSite, S3Bucket, SftpSite, public_key_line

from ingest.instance import RunnerError
from ingest.outcomes import RunSummary
from ingest.runner import run_once
from ingest.storage.drop.sftp import SftpDrop
from pseudonymise.keys import new_key_text

pytestmark = pytest.mark.slow

DROPS = ("local", "s3", "sftp", "openssh")  # sftp: asyncssh in-process; openssh: its sshd
WAREHOUSES = ("duckdb", "postgres")
PSEUDONYM_KEY = new_key_text()
LANDING_KEY = new_key_text()


@dataclass
class Deployment:
    """One combination's settings and the places to inspect afterwards."""

    root: Path  # TRIAL_HOME, DAGSTER_HOME and any local folder the service writes
    drop: DropSite
    landing: LandingSite
    warehouse_url: str
    dagster_pg_url: str = ""
    extra_env: dict[str, str] | None = None

    def env(self, allocation: Path) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("TRIAL_", "DAGSTER_"))}
        settings = {
            "TRIAL_HOME": str(self.root / "home"),
            "DAGSTER_HOME": str(self.root / "home" / "dagster"),
            "TRIAL_DROP_URL": self.drop.url,
            "TRIAL_LANDING_URL": self.landing.url,
            "TRIAL_WAREHOUSE_URL": self.warehouse_url,
            "TRIAL_ALLOCATION_FILE": str(allocation),
            "TRIAL_PSEUDONYM_KEY": PSEUDONYM_KEY,
            "TRIAL_LANDING_KEY": LANDING_KEY,
        }
        if self.dagster_pg_url:
            settings["TRIAL_DAGSTER_PG_URL"] = self.dagster_pg_url
        return {**base, **settings, **(self.extra_env or {})}


@dataclass
class Outcome:
    deployment: Deployment
    summary: RunSummary
    snapshot: WarehouseSnapshot
    captured: Captured
    seconds: float


def deliver_and_run(trial: CanaryTrial, deployment: Deployment) -> Outcome:
    allocation = deployment.root / "allocation.csv"
    allocation.write_text(trial.allocation_csv)
    for la_code, name, content in trial.deliveries:
        deployment.drop.deliver(la_code, name, content)
    started = time.monotonic()
    with captured_output() as captured:
        summary = run_once(deployment.env(allocation))
    seconds = time.monotonic() - started
    snapshot = warehouse_snapshot(deployment.warehouse_url)
    return Outcome(deployment, summary, snapshot, captured, seconds)


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> CanaryTrial:
    return canary_trial(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def embedded_default(trial: CanaryTrial, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """The reference: local drop folder, local landing folder, DuckDB, Dagster on SQLite."""
    root = tmp_path_factory.mktemp("embedded")
    deployment = Deployment(
        root=root,
        drop=FolderDropSite(root / "drop"),
        landing=FolderLandingSite(root / "landing"),
        warehouse_url=f"duckdb:///{root / 'home' / 'warehouse.duckdb'}",
    )
    return deliver_and_run(trial, deployment)


def test_the_embedded_default_loads_every_la(trial: CanaryTrial, embedded_default: Outcome) -> None:
    statuses = sorted((f.la_code, f.status) for f in embedded_default.summary.files)

    assert statuses == sorted(
        [(la, "accepted") for la in trial.la_codes] + [(trial.la_codes[1], "rejected")]
    )
    rows = embedded_default.snapshot.rows
    for la_code, datasets in zip(trial.la_codes, LA_DATASETS, strict=True):
        for dataset in datasets:
            assert rows[f"clean.{dataset}"].get(la_code, 0) > 0, (la_code, dataset)
    assert sorted(embedded_default.snapshot.person_tokens) == trial.la_codes[:1]
    rejected = [row for row in embedded_default.snapshot.audit if row[6] > 0]
    assert rejected, "the rows with a canary in every field were rejected"


@pytest.mark.parametrize("warehouse", WAREHOUSES)
@pytest.mark.parametrize("drop", DROPS)
def test_every_path_loads_as_the_embedded_default_and_leaks_nothing(
    drop: str,
    warehouse: str,
    trial: CanaryTrial,
    embedded_default: Outcome,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if warehouse == "postgres" and not postgres_available():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    sftp_drops = track_sftp_drops(monkeypatch)
    with ExitStack() as stack:
        if (drop, warehouse) == ("local", "duckdb"):
            outcome = embedded_default  # the reference itself, checked like every other path
        else:
            deployment = deployment_for(drop, warehouse, tmp_path, request, stack)
            server_log = PostgresServerLog() if warehouse == "postgres" else None
            outcome = deliver_and_run(trial, deployment)
            if server_log is not None:
                logged = server_log.written_since()
                assert [c for c in trial.canaries if c.lower().encode() in logged.lower()] == []
        print(f"{drop} x {warehouse}: run_once took {outcome.seconds:.1f} s")

        assert_loads_as_the_embedded_default(outcome, embedded_default)
        assert_drop_emptied_and_reported(outcome, trial)
        assert_landing_holds_ciphertext_only(outcome, trial)
        assert_no_canary_was_written(outcome, trial)
    if drop in ("sftp", "openssh"):
        assert sftp_drops.opened, "the SFTP drop was used"
        assert sftp_drops.all_closed(), "every SFTP connection the sensor and runs opened is closed"


def deployment_for(
    drop: str, warehouse: str, tmp_path: Path, request: pytest.FixtureRequest, stack: ExitStack
) -> Deployment:
    if warehouse == "postgres":
        warehouse_url = stack.enter_context(postgres_database("trial_e2e_wh"))
        dagster_url = stack.enter_context(postgres_database("trial_e2e_dagster"))
        dagster_url = libpq_url(dagster_url)
    else:
        warehouse_url, dagster_url = f"duckdb:///{tmp_path / 'home' / 'warehouse.duckdb'}", ""
    landing: LandingSite = FolderLandingSite(tmp_path / "landing")
    extra: dict[str, str] = {}
    site: DropSite
    if drop == "local":
        site = FolderDropSite(tmp_path / "drop")
    elif drop == "s3":
        bucket: S3Bucket = request.getfixturevalue("s3_bucket")
        site = S3DropSite(bucket.client, bucket.name)
        landing = S3LandingSite(bucket.client, new_bucket(bucket.client))
        extra["TRIAL_LANDING_S3_SSE"] = "AES256"
    elif drop == "openssh":
        sshd: OpenSshSite = request.getfixturevalue("openssh_site")
        site = FolderDropSite(sshd.root / "drop", drop_url=sshd.server.url(f"{sshd.root}/drop"))
        extra["TRIAL_SFTP_KEY_FILE"] = str(sshd.client_key_file)
        extra["TRIAL_SFTP_HOST_KEY"] = sshd.server.host_key_line
    else:
        sftp: SftpSite = request.getfixturevalue("sftp_site")
        site = FolderDropSite(sftp.root / "drop", drop_url=sftp.server.url("/drop"))
        extra["TRIAL_SFTP_KEY_FILE"] = str(sftp.client_key_file)
        extra["TRIAL_SFTP_HOST_KEY"] = sftp.server.host_key_line
    return Deployment(tmp_path, site, landing, warehouse_url, dagster_url, extra)


def assert_loads_as_the_embedded_default(outcome: Outcome, reference: Outcome) -> None:
    def statuses(summary: RunSummary) -> list[tuple[str, str]]:
        return sorted((f.la_code, f.status) for f in summary.files)

    assert outcome.summary.exit_code == 0
    assert statuses(outcome.summary) == statuses(reference.summary)
    assert outcome.snapshot.rows == reference.snapshot.rows
    assert outcome.snapshot.audit == reference.snapshot.audit
    assert outcome.snapshot.person_tokens == reference.snapshot.person_tokens


def assert_drop_emptied_and_reported(outcome: Outcome, trial: CanaryTrial) -> None:
    drop = outcome.deployment.drop
    for la_code in trial.la_codes:
        delivered = [name for la, name, _ in trial.deliveries if la == la_code]
        assert drop.inbox(la_code) == [], la_code
        reports = drop.reports(la_code)
        assert len(reports) == len(delivered), la_code
        assert all(report.strip() for report in reports), la_code


def assert_landing_holds_ciphertext_only(outcome: Outcome, trial: CanaryTrial) -> None:
    landed = landed_plaintexts(outcome.deployment.landing.objects(), LANDING_KEY)

    assert sorted(landed) == sorted(content for _, _, content in trial.deliveries)


def assert_no_canary_was_written(outcome: Outcome, trial: CanaryTrial) -> None:
    deployment = outcome.deployment
    canaries = trial.canaries
    allocation = deployment.root / "allocation.csv"
    written = {
        name: hits
        for name, hits in files_holding(deployment.root, canaries).items()
        if deployment.root / name != allocation
    }
    assert written == {}, "files under TRIAL_HOME, DAGSTER_HOME or the local folders"
    if isinstance(deployment.drop, FolderDropSite):  # the SFTP server's folder too
        assert files_holding(deployment.drop.root, canaries) == {}
    for name, data in deployment.landing.objects().items():
        assert not [c for c in canaries if c.lower().encode() in data.lower()], name
    for la_code in trial.la_codes:
        for report in deployment.drop.reports(la_code):
            assert not [c for c in canaries if c.lower().encode() in report.lower()], la_code
    assert warehouse_holding(deployment.warehouse_url, canaries) == {}
    if deployment.dagster_pg_url:
        assert postgres_tables_holding(deployment.dagster_pg_url, canaries) == {}
    said = outcome.captured.text.lower()
    assert [c for c in canaries if c.lower() in said] == []
    assert outcome.captured.output or outcome.captured.records, "something was captured"


# --- connections ----------------------------------------------------------------------------


@dataclass
class SftpDropTracker:
    opened: list[int]
    closed: set[int]

    def all_closed(self) -> bool:
        return set(self.opened) <= self.closed


def track_sftp_drops(monkeypatch: pytest.MonkeyPatch) -> SftpDropTracker:
    """Record every `SftpDrop` made and closed in this process from now on."""
    tracker = SftpDropTracker([], set())
    original_init, original_close = SftpDrop.__init__, SftpDrop.close

    def init(self: SftpDrop, *args: object, **kwargs: object) -> None:
        original_init(self, *args, **kwargs)  # type: ignore[arg-type]
        tracker.opened.append(id(self))

    def close(self: SftpDrop) -> None:
        tracker.closed.add(id(self))
        original_close(self)

    monkeypatch.setattr(SftpDrop, "__init__", init)
    monkeypatch.setattr(SftpDrop, "close", close)
    return tracker


def test_an_sftp_server_with_another_host_key_fails_the_run_and_nothing_is_taken(
    trial: CanaryTrial, sftp_site: SftpSite, tmp_path: Path
) -> None:
    impostor_key = public_key_line(asyncssh.generate_private_key("ssh-ed25519"))
    drop = FolderDropSite(sftp_site.root / "drop", drop_url=sftp_site.server.url("/drop"))
    deployment = Deployment(
        root=tmp_path,
        drop=drop,
        landing=FolderLandingSite(tmp_path / "landing"),
        warehouse_url=f"duckdb:///{tmp_path / 'home' / 'warehouse.duckdb'}",
        extra_env={
            "TRIAL_SFTP_KEY_FILE": str(sftp_site.client_key_file),
            "TRIAL_SFTP_HOST_KEY": impostor_key,
        },
    )
    allocation = tmp_path / "allocation.csv"
    allocation.write_text(trial.allocation_csv)
    la_code, name, content = trial.deliveries[0]
    drop.deliver(la_code, name, content)

    with pytest.raises(RunnerError) as raised:
        run_once(deployment.env(allocation))

    message = str(raised.value)
    assert "no inbox on the drop could be listed" in message
    assert "refusing to connect" in message
    assert sftp_site.server.host_key.get_fingerprint("sha256") in message
    assert drop.inbox(la_code) == [name]
    assert deployment.landing.objects() == {}


def test_the_postgresql_log_search_sees_what_the_server_logs() -> None:
    """The server log is searched where the server writes it: a failing statement is there."""
    if not postgres_available():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    server_log = PostgresServerLog()
    marker = f"LOGPROBE{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN) as conn, pytest.raises(psycopg.errors.InvalidTextRepresentation):
        conn.execute(f"SELECT '{marker}'::integer")

    deadline = time.monotonic() + 5
    while marker.encode() not in server_log.written_since() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.encode() in server_log.written_since()


@pytest.fixture(autouse=True)
def _no_stray_trial_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("TRIAL_", "DAGSTER_")) and not name.startswith("TRIAL_SFTP_"):
            monkeypatch.delenv(name)
    yield
