"""Key rotation: a small synthetic trial is rebuilt under a new key and swapped in."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from e2e import postgres_database, require_postgres

from ingest.processing import Services, process_received, take_from_landing
from ingest.retention import apply_retention
from ingest.rotation import (
    RotationRefused,
    key_rotations,
    rotate_key,
    stored_key_ids,
)
from ingest.storage.landing import LandingStore, submission_id_of
from ingest.warehouse import Warehouse, duckdb_url
from pseudonymise.keys import TrialKey, new_key_text, parse_key_text
from pseudonymise.tokens import Tokeniser
from schemas.datasets import DATASETS
from synthetic import generate_trial

LAS = ("901", "902")
# Enough datasets to test links (people <-> episodes) and withdrawals; fewer files, faster.
DATASETS_LOADED = ("people", "episodes", "withdrawals")
FIRST_RECEIVED = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW_ROTATED = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


@dataclass
class Trial:
    landing: LandingStore
    landing_key: TrialKey
    landing_key_text: str
    url: str
    old_key: TrialKey
    held_submission: str
    first_submission: str  # LA 901's people return, the first file received
    released_submission: str  # a short people return of 902, released past the checks

    def warehouse(self) -> Warehouse:
        return Warehouse(self.url)


def _load(services: Services, la_code: str, content: bytes, received_at: datetime) -> str:
    submission_id = submission_id_of(la_code, services.landing.content_hmac(la_code, content))
    services.landing.put(submission_id, la_code, content, received_at)
    received = take_from_landing(services, la_code, submission_id)
    process_received(services, received)
    return submission_id


@pytest.fixture(scope="module")
def built_trial(tmp_path_factory: pytest.TempPathFactory) -> Trial:
    """Built once: each test gets a copy (`trial`)."""
    tmp_path = tmp_path_factory.mktemp("trial")
    manifest = generate_trial(tmp_path / "synth", seed=7, families_per_la=6, mess=False)
    landing_key_text = new_key_text()
    landing_key = parse_key_text(landing_key_text)
    landing = LandingStore(tmp_path / "landing", landing_key)
    url = duckdb_url(tmp_path / "home" / "warehouse.duckdb")
    old_key = parse_key_text(new_key_text())
    warehouse = Warehouse(url)
    services = Services(landing=landing, warehouse=warehouse, tokeniser=Tokeniser(old_key))
    moment = FIRST_RECEIVED
    submissions = []
    for file in manifest.files:
        if file.la_code in LAS and set(file.datasets) <= set(DATASETS_LOADED):
            content = (tmp_path / "synth" / file.path).read_bytes()
            submissions.append(_load(services, file.la_code, content, moment))
            moment += timedelta(minutes=1)
    # A later people return of 901 with only two of its rows: held by the halving check.
    people = (tmp_path / "synth" / "drop" / "901" / "people.csv").read_bytes()
    short = b"\n".join(people.splitlines()[:3]) + b"\n"
    held = _load(services, "901", short, moment)
    # The same for 902, but a person looked and released it: it became current.
    people = (tmp_path / "synth" / "drop" / "902" / "people.csv").read_bytes()
    short = b"\n".join(people.splitlines()[:3]) + b"\n"
    released = _load(services, "902", short, moment + timedelta(minutes=1))
    received = take_from_landing(services, "902", released)
    process_received(services, received, detect_duplicate=False, release_held=True)
    warehouse.dispose()
    return Trial(
        landing, landing_key, landing_key_text, url, old_key, held, submissions[0], released
    )


@pytest.fixture
def trial(built_trial: Trial, tmp_path: Path) -> Trial:
    source = built_trial.landing.root.parent
    shutil.copytree(source / "landing", tmp_path / "landing")
    shutil.copytree(source / "home", tmp_path / "home")
    landing = LandingStore(tmp_path / "landing", built_trial.landing_key)
    url = duckdb_url(tmp_path / "home" / "warehouse.duckdb")
    return replace(built_trial, landing=landing, url=url)


def _rows(url: str, schema: str, name: str) -> list[tuple[Any, ...]]:
    warehouse = Warehouse(url)
    table = warehouse.table(schema, name)
    with warehouse.engine.connect() as conn:
        rows = sorted(conn.execute(sa.select(table)).all(), key=repr)
    warehouse.dispose()
    return [tuple(r) for r in rows]


def _column(url: str, schema: str, name: str, column: str) -> set[str]:
    warehouse = Warehouse(url)
    table = warehouse.table(schema, name)
    with warehouse.engine.connect() as conn:
        values = {r[0] for r in conn.execute(sa.select(table.c[column])) if r[0] is not None}
    warehouse.dispose()
    return values


def _linked(url: str) -> int:
    """People whose family has an episode, joined on the family token."""
    warehouse = Warehouse(url)
    people = warehouse.table("clean", "people")
    episodes = warehouse.table("clean", "episodes")
    query = sa.select(sa.func.count(sa.distinct(people.c.person_token))).select_from(
        people.join(episodes, people.c.family_token == episodes.c.family_token)
    )
    with warehouse.engine.connect() as conn:
        linked = int(conn.execute(query).scalar_one())
    warehouse.dispose()
    return linked


def _counts(url: str) -> dict[str, int]:
    return {
        f"{schema}.{name}": len(_rows(url, schema, name))
        for name in DATASETS
        for schema in ("clean", "history")
    } | {"ops.withdrawn": len(_rows(url, "ops", "withdrawn"))}


def _data(url: str) -> dict[str, list[tuple[Any, ...]]]:
    return {f"{s}.{d}": _rows(url, s, d) for d in DATASETS for s in ("clean", "history")}


def _another_run_lands(warehouse: Warehouse) -> None:
    """What a run finishing during a rotation writes: one more audit row in `ops.submissions`."""
    [row, *_] = warehouse.submissions()
    warehouse.record_submission([replace(row, receipt_id="f" * 32)])
    warehouse.dispose()


def test_rotation_rekeys_every_row_keeps_links_counts_and_decisions(trial: Trial) -> None:
    old_tokens = _column(trial.url, "clean", "people", "person_token")
    old_counts, old_linked = _counts(trial.url), _linked(trial.url)
    before = trial.warehouse()
    statuses = [(r.receipt_id, r.dataset, r.status, r.reason) for r in before.submissions()]
    before.dispose()
    tokeniser = Tokeniser(parse_key_text(new_key_text()))

    result = rotate_key(trial.landing, trial.url, tokeniser)

    assert result.swapped
    assert result.old_key_ids == (trial.old_key.key_id,)
    assert result.new_key_id == tokeniser.key_id
    new_tokens = _column(trial.url, "clean", "people", "person_token")
    assert len(new_tokens) == len(old_tokens) > 0
    assert not new_tokens & old_tokens
    assert _counts(trial.url) == old_counts
    assert old_counts["ops.withdrawn"] > 0
    assert _linked(trial.url) == old_linked > 0
    after = trial.warehouse()
    assert stored_key_ids(after) == {tokeniser.key_id}
    [record] = key_rotations(after)
    assert record["old_key_ids"] == trial.old_key.key_id
    assert record["new_key_id"] == tokeniser.key_id
    # The audit is carried over, and the held return is held again.
    assert [(r.receipt_id, r.dataset, r.status, r.reason) for r in after.submissions()] == (
        statuses
    )
    current = {(c.la_code, c.dataset): c.submission_id for c in after.current_returns()}
    assert current[("901", "people")] == trial.first_submission != trial.held_submission
    assert current[("902", "people")] == trial.released_submission
    after.dispose()
    first = _data(trial.url)

    rotate_key(trial.landing, trial.url, tokeniser)  # again, with the same key

    assert _data(trial.url) == first
    again = trial.warehouse()
    assert len(key_rotations(again)) == 2
    again.dispose()


def test_a_file_deleted_by_retention_refuses_rotation_unless_loss_is_allowed(
    trial: Trial,
) -> None:
    warehouse = trial.warehouse()
    # Retention as of just after the first file: only that file (901's people) expires.
    now = FIRST_RECEIVED + timedelta(days=30, seconds=30)
    deleted = apply_retention(trial.landing, warehouse, now=now, retention_days=30)
    assert [f.submission_id for f in deleted.deleted] == [trial.first_submission]
    warehouse.dispose()
    before = _data(trial.url)
    key_text = new_key_text()

    with pytest.raises(RotationRefused) as refused:
        rotate_key(trial.landing, trial.url, Tokeniser(parse_key_text(key_text)))

    message = str(refused.value)
    assert "901 x people" in message
    assert "--allow-loss" in message
    assert key_text not in message
    assert _data(trial.url) == before  # untouched
    assert not Path(trial.url.removeprefix("duckdb:///") + ".rotating").exists()

    result = rotate_key(
        trial.landing, trial.url, Tokeniser(parse_key_text(key_text)), allow_loss=True
    )

    assert result.swapped
    assert {r.submission_id for r in result.returns_lost} == {trial.first_submission}
    after = trial.warehouse()
    current = {(c.la_code, c.dataset): c.submission_id for c in after.current_returns()}
    # The held short return was the only people return of 901 left to replay.
    assert current[("901", "people")] == trial.held_submission
    assert len(after.retention_log()) == 1
    after.dispose()


def test_the_cli_refuses_a_lossy_rotation_naming_la_and_dataset_only(
    trial: Trial, capsys: pytest.CaptureFixture[str]
) -> None:
    from ingest.cli import main

    warehouse = trial.warehouse()
    now = FIRST_RECEIVED + timedelta(days=30, seconds=30)
    apply_retention(trial.landing, warehouse, now=now, retention_days=30)
    warehouse.dispose()
    new_key = new_key_text()
    env = {
        "TRIAL_LANDING_URL": str(trial.landing.root),
        "TRIAL_LANDING_KEY": trial.landing_key_text,
        "TRIAL_WAREHOUSE_URL": trial.url,
        "TRIAL_PSEUDONYM_KEY": new_key,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        code = main(["rotate-key"])

    out = capsys.readouterr().out
    assert code == 2
    assert "nothing changed" in out
    assert "901 x people" in out
    assert new_key not in out
    assert trial.landing_key_text not in out


def test_a_file_processed_during_the_rebuild_stops_the_swap(
    trial: Trial, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.rotation as rotation

    def rebuild_while_a_run_lands(*args: Any, **kwargs: Any) -> rotation.RotationResult:
        new: Warehouse = args[2]
        new.create_schema()  # stands in for the rebuild: the swap's checks are under test
        result = rotation.RotationResult((), "k1-new", NOW_ROTATED, 0, (), 0)
        _another_run_lands(trial.warehouse())
        return result

    monkeypatch.setattr(rotation, "rebuild", rebuild_while_a_run_lands)
    before = _data(trial.url)

    with pytest.raises(RotationRefused, match="processed while"):
        rotate_key(trial.landing, trial.url, Tokeniser(parse_key_text(new_key_text())))

    assert _data(trial.url) == before
    assert not Path(trial.url.removeprefix("duckdb:///") + ".rotating").exists()


def test_the_swap_refuses_while_another_process_holds_the_warehouse(tmp_path: Path) -> None:
    import subprocess
    import sys

    from ingest.rotation.duckdb_swap import _swap_duckdb

    old, new = tmp_path / "old.duckdb", tmp_path / "new.duckdb"
    Warehouse(duckdb_url(new)).create_schema()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
            " time.sleep(60)",
            str(old),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RotationRefused, match="in use"):
            _swap_duckdb(old, new, (0, None))
    finally:
        holder.kill()
        holder.wait()
    assert new.exists()


def test_rotation_builds_and_verifies_in_an_empty_postgresql_database(trial: Trial) -> None:
    require_postgres()
    tokeniser = Tokeniser(parse_key_text(new_key_text()))
    with postgres_database("trial_rotation_test") as target:
        result = rotate_key(trial.landing, trial.url, tokeniser, target_url=target)

        assert not result.swapped
        assert result.target_url == target
        rotated = Warehouse(target)
        assert stored_key_ids(rotated) == {tokeniser.key_id}
        assert len(key_rotations(rotated)) == 1
        old = trial.warehouse()
        assert rotated.current_returns() == old.current_returns()
        old.dispose()
        rotated.dispose()
        with pytest.raises(RotationRefused, match="not empty"):
            rotate_key(trial.landing, trial.url, tokeniser, target_url=target)


def test_verification_names_what_differs_by_la_and_dataset_only(
    trial: Trial, tmp_path: Path
) -> None:
    from ingest.rotation import RotationVerificationFailed, plan_rotation, verify

    old = trial.warehouse()
    empty = Warehouse(duckdb_url(tmp_path / "empty.duckdb"))
    empty.create_schema()
    tokens = _column(trial.url, "clean", "people", "person_token")

    with pytest.raises(RotationVerificationFailed) as failed:
        verify(old, empty, "k1-new", plan_rotation(trial.landing, old))

    message = str(failed.value)
    assert "current return differs for 901 x episodes, 901 x people" in message
    assert "row counts differ for clean 901 x episodes" in message
    assert "audit outcome(s) differ" in message
    assert "withdrawn people or families of LA 901 differ" in message
    assert not any(token in message for token in tokens)
    old.dispose()
    empty.dispose()
