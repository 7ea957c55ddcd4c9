"""`trial-ingest run` and `demo`: refusing to start without their settings, the exit code,
and the LA x dataset summary."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_dagster_definitions import TrialService, service

from ingest.demo import main_demo
from ingest.instance import RunnerError
from ingest.outcomes import FileOutcome, RunSummary, file_line
from ingest.runner import run_once, sqlite_storage_held_open
from ingest.ui import ui_environment
from ingest.warehouse import SubmissionRecord

__all__ = ["service"]

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def audit_row(status: str, reason: str | None = None) -> SubmissionRecord:
    return SubmissionRecord(
        receipt_id="r",
        submission_id="201-" + "a" * 24,
        la_code="201",
        dataset="people",
        status=status,  # type: ignore[arg-type]
        reason=reason,
        rows_received=1,
        rows_loaded=1,
        rows_rejected=0,
        received_at=NOW,
        processed_at=NOW,
        content_hmac="0" * 64,
        size_bytes=1,
        key_id="k1-0",
    )


def outcome(succeeded: bool, *rows: SubmissionRecord, landed: bool = True) -> FileOutcome:
    submission = "201-" + "a" * 24 if landed else None
    return FileOutcome("201", "f" * 24, "run", succeeded, submission, rows)


@pytest.mark.parametrize(
    ("file", "status"),
    [
        (outcome(True, audit_row("accepted")), "accepted"),
        (outcome(True, audit_row("rejected"), audit_row("accepted")), "accepted"),
        (outcome(True, audit_row("rejected")), "rejected"),
        (outcome(True, audit_row("duplicate")), "duplicate"),
        (outcome(False, audit_row("held", "row_count_not_halved")), "held"),
        (outcome(False), "failed"),
        (outcome(True), "failed"),
        (outcome(True, landed=False), "gone"),
        (outcome(False, landed=False), "failed"),
    ],
)
def test_a_files_status_comes_from_its_audit_rows(file: FileOutcome, status: str) -> None:
    assert file.status == status


def test_a_file_line_gives_the_la_status_and_rows_and_no_file_name() -> None:
    accepted = outcome(True, audit_row("accepted"), audit_row("rejected", "la_code_mismatch"))
    held = outcome(False, audit_row("held", "row_count_not_halved"))
    failed = outcome(False)

    assert file_line(accepted) == (
        "  LA 201  ACCEPTED   people 1 loaded, 0 rejected; people rejected (la_code_mismatch)"
    )
    assert file_line(held) == "  LA 201  HELD       people held by row_count_not_halved, 0 rejected"
    assert file_line(failed).endswith("run run failed: see it in the Dagster UI")
    assert all("f" * 24 not in file_line(o) for o in (accepted, held, failed))


def test_the_exit_code_is_zero_only_when_no_run_failed() -> None:
    ended = [
        outcome(True, audit_row("accepted")),
        outcome(True, audit_row("duplicate")),
        outcome(False, audit_row("held", "row_count_not_halved")),  # waits for a person
    ]

    assert RunSummary(files=ended).exit_code == 0
    assert RunSummary(files=[*ended, outcome(False)]).exit_code == 1
    assert RunSummary().exit_code == 0


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        ("TRIAL_ALLOCATION_FILE", "TRIAL_ALLOCATION_FILE is not set"),
        ("TRIAL_DROP_URL", "TRIAL_DROP_URL is not set"),
        ("TRIAL_PSEUDONYM_KEY", "no pseudonymisation key configured"),
        ("TRIAL_LANDING_KEY", "no landing-store key configured"),
    ],
)
def test_run_refuses_to_start_without_a_setting(
    service: TrialService, variable: str, message: str
) -> None:
    key = service.env["TRIAL_PSEUDONYM_KEY"]
    env = {k: v for k, v in service.env.items() if k != variable}

    with pytest.raises(RunnerError, match=message) as raised:
        run_once(env)

    assert key not in str(raised.value)


@pytest.mark.slow
def test_run_says_when_the_drop_folder_is_missing(service: TrialService) -> None:
    env = {**service.env, "TRIAL_DROP_URL": str(service.root / "nowhere")}

    with pytest.raises(RunnerError, match="does not exist"):
        run_once(env)


@pytest.mark.slow
def test_the_demo_runs_the_twelve_la_trial_and_prints_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main_demo(home=tmp_path / "demo", seed=3, families_per_la=3)

    printed = capsys.readouterr().out
    table = [line for line in printed.splitlines() if line[:3].isdigit()]
    assert code == 0
    assert len(table) == 12
    assert all(" . " not in line.split("  ", 2)[-1] for line in table)  # every LA has data
    assert "Files processed:" in printed
    assert (tmp_path / "demo" / "demo.env").read_text().count("TRIAL_") >= 5


def test_the_demo_never_clears_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")

    with pytest.raises(RunnerError, match="not made by `trial-ingest demo`"):
        main_demo(home=tmp_path)

    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_the_ui_shows_the_demo_only_when_nothing_else_is_configured(tmp_path: Path) -> None:
    demo_env = tmp_path / "demo.env"
    demo_env.write_text("TRIAL_DROP_URL=/demo/drop\nDAGSTER_HOME=/demo/dagster\n")

    assert ui_environment({"PATH": "/bin"}, demo_env) == {
        "PATH": "/bin",
        "TRIAL_DROP_URL": "/demo/drop",
        "DAGSTER_HOME": "/demo/dagster",
    }
    assert ui_environment({"TRIAL_DROP_URL": "/srv/drop"}, demo_env) == {
        "TRIAL_DROP_URL": "/srv/drop"
    }
    assert ui_environment({}, tmp_path / "absent.env") == {}


def test_the_sqlite_storage_is_held_open_only_while_runs_execute(tmp_path: Path) -> None:
    import sqlite3

    index = tmp_path / "event_log.db"
    sqlite3.connect(index).close()

    with sqlite_storage_held_open(tmp_path):  # runs.db is missing: only event_log.db is held
        writer = sqlite3.connect(index)
        writer.execute("CREATE TABLE t (x)")
        writer.commit()
        writer.close()

    with sqlite_storage_held_open(tmp_path / "postgres-configured"):
        pass
    assert sqlite3.connect(index).execute("SELECT count(*) FROM t").fetchone() == (0,)
