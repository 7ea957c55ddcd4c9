"""The LA pre-flight checker, tried as a new LA data officer would: synth, then check every file."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pytest

from ingest.cli import main
from ingest.cli.checker import EXIT_ACCEPTED, EXIT_FILE_REJECTED, EXIT_ROWS_REJECTED
from pseudonymise.keys import new_key_text, parse_key_text
from pseudonymise.tokens import Tokeniser
from schemas.datasets import DATASETS
from schemas.rules import Severity
from schemas.submission import check_submission
from synthetic import TrialManifest, generate_trial

TODAY = date(2026, 1, 15)


@pytest.fixture(scope="module")
def messy_trial(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrialManifest]:
    out = tmp_path_factory.mktemp("trial")
    return out, generate_trial(out, seed=7, families_per_la=12, mess=True)


def _reported(
    content: bytes, la_code: str
) -> tuple[set[tuple[str, int, str, str, str]], list[str]]:
    outcome = check_submission(
        content, la_code=la_code, tokeniser=Tokeniser(parse_key_text(new_key_text())), today=TODAY
    )
    found = {
        (table.dataset, row, column, rule, severity)
        for table in outcome.tables
        for row, column, rule, severity in table.issues.iter_rows()
    }
    file_errors = [
        issue.rule
        for issue in [*outcome.file_issues, *(i for t in outcome.tables for i in t.file_issues)]
        if issue.severity is Severity.ERROR
    ]
    return found, file_errors


def test_checker_reports_every_planted_problem_and_nothing_else(
    messy_trial: tuple[Path, TrialManifest],
) -> None:
    trial_dir, manifest = messy_trial
    assert manifest.issues, "the messy trial plants problems"
    for drop_file in manifest.files:
        content = (trial_dir / drop_file.path).read_bytes()
        found, file_errors = _reported(content, drop_file.la_code)
        planted = {
            (i.dataset, i.row_number, i.column, i.rule, i.severity)
            for i in manifest.issues_in(drop_file.path)
        }
        assert file_errors == [], drop_file.path
        assert found == planted, drop_file.path


def test_every_dataset_is_recognised_in_every_file(messy_trial: tuple[Path, TrialManifest]) -> None:
    trial_dir, manifest = messy_trial
    seen: dict[str, set[str]] = {}
    for drop_file in manifest.files:
        outcome = check_submission(
            (trial_dir / drop_file.path).read_bytes(),
            la_code=drop_file.la_code,
            tokeniser=Tokeniser(parse_key_text(new_key_text())),
            today=TODAY,
        )
        assert sorted(t.dataset for t in outcome.tables) == sorted(drop_file.datasets)
        for table in outcome.tables:
            assert table.rows_received == drop_file.rows[table.dataset]
        seen.setdefault(drop_file.la_code, set()).update(drop_file.datasets)
    assert all(datasets == set(DATASETS) for datasets in seen.values())
    assert len(seen) == 12


def test_clean_file_exits_zero_and_messy_file_exits_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = generate_trial(tmp_path, seed=3, families_per_la=5, mess=False)
    drop_file = next(f for f in manifest.files if f.datasets == ("people",))
    path = tmp_path / drop_file.path
    assert main(["check", str(path), "--la", drop_file.la_code, "--today", "2026-01-15"]) == (
        EXIT_ACCEPTED
    )
    assert "Result:    ACCEPTED" in capsys.readouterr().out

    lines = path.read_text(encoding="utf-8-sig").splitlines()
    header, first = lines[0], lines[1].split(",")
    role_at = [h.strip().lower() for h in header.split(",")].index("role")
    first[role_at] = "GRANDPARENT"
    path.write_text("\n".join([header, ",".join(first), *lines[2:]]) + "\n", encoding="utf-8")
    code = main(["check", str(path), "--la", drop_file.la_code, "--today", "2026-01-15"])
    assert code == EXIT_ROWS_REJECTED
    assert "row 2, column role: code_list [error]" in capsys.readouterr().out


def test_wrong_la_and_unreadable_files_exit_two(tmp_path: Path) -> None:
    garbage = tmp_path / "return.csv"
    garbage.write_bytes(b"\x00\x01\x02 not a return")
    assert main(["check", str(garbage), "--la", "901"]) == EXIT_FILE_REJECTED
    wrong_la = tmp_path / "keyworkers.csv"
    wrong_la.write_text(
        "la_code,keyworker_id,role,start_date\n902,KW1,KEYWORKER,2024-01-01\n", encoding="utf-8"
    )
    assert main(["check", str(wrong_la), "--la", "901"]) == EXIT_FILE_REJECTED


def test_csv_report_opens_as_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keyworkers.csv"
    path.write_text(
        "keyworker_id,role,start_date,fte\n"
        "KW1,KEYWORKER,2024-01-01,3\nKW2,BOSS,2024-01-01,1\nKW3,KEYWORKER,2024-01-01,0.5\n",
        encoding="utf-8",
    )
    report = tmp_path / "report.csv"
    assert main(["check", str(path), "--la", "901", "--csv", str(report)]) == EXIT_ROWS_REJECTED
    rows = list(csv.DictReader(io.StringIO(report.read_text(encoding="utf-8-sig"))))
    assert {(r["row"], r["column"], r["rule"]) for r in rows} == {
        ("2", "fte", "out_of_range"),
        ("3", "role", "code_list"),
    }
    capsys.readouterr()
