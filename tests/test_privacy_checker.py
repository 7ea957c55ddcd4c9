"""Canary values planted in every field never come out of the checker: not in its report, its
CSV report, its exit path or its exceptions."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from ingest.cli import main
from schemas.datasets import DATASETS

# A marker no path, rule or word of ours contains.
CANARY = "XQJZV"


def _canary_row(dataset_name: str, serial: int) -> dict[str, str]:
    """A value for every field that contains the canary, so every rule sees one."""
    return {f.name: f"{CANARY}{f.name}{serial}" for f in DATASETS[dataset_name].fields}


def _csv(rows: list[dict[str, str]], *, header: bool = True) -> str:
    columns = list(rows[0])
    lines = [",".join(columns)] if header else []
    lines += [",".join(row[c] for c in columns) for row in rows]
    return "\n".join(lines) + "\n"


def _assert_no_canary(text: str) -> None:
    assert CANARY.lower() not in text.lower()


@pytest.mark.parametrize("dataset_name", sorted(DATASETS))
def test_no_canary_in_any_report(
    dataset_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / f"{dataset_name}.csv"
    path.write_text(_csv([_canary_row(dataset_name, i) for i in range(3)]), encoding="utf-8")
    report = tmp_path / "report.csv"
    main(["check", str(path), "--la", "901", "--csv", str(report)])
    captured = capsys.readouterr()
    _assert_no_canary(captured.out + captured.err)
    _assert_no_canary(report.read_text(encoding="utf-8-sig"))


def test_no_canary_when_the_header_row_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "people.csv"
    path.write_text(
        _csv([_canary_row("people", i) for i in range(3)], header=False), encoding="utf-8"
    )
    report = tmp_path / "report.csv"
    main(["check", str(path), "--la", "901", "--csv", str(report)])
    captured = capsys.readouterr()
    assert "unknown_dataset" in captured.out
    _assert_no_canary(captured.out + captured.err)
    _assert_no_canary(report.read_text(encoding="utf-8-sig"))


def test_no_canary_from_a_zip_or_a_windows_1252_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.csv", _csv([_canary_row("keyworkers", 1)]).encode("cp1252"))
        archive.writestr("b.txt", f"{CANARY} notes".encode())
    path = tmp_path / "returns.zip"
    path.write_bytes(buffer.getvalue())
    main(["check", str(path), "--la", "901"])
    captured = capsys.readouterr()
    _assert_no_canary(captured.out + captured.err)
