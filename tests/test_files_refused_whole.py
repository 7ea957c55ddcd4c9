"""Files refused whole, the same by `trial-ingest check` and by `trial-ingest run`, and never
at the cost of other files: a workbook that would make the native reader allocate without
bound, and a file holding one dataset twice.

The commands run as child processes, as an LA and the service run them: should the bounds
check regress, calamine aborts the child (SIGABRT), and the test fails instead of the test
run.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from e2e import postgres_available, postgres_database, workbook
from hostile_workbooks import far_cell_workbook
from test_dagster_definitions import TrialService, people_csv, service

from ingest.cli.checker import EXIT_FILE_REJECTED
from schemas.rules import DATASET_REPEATED, XLSX_OUT_OF_BOUNDS

__all__ = ["service"]
pytestmark = pytest.mark.slow


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


TWICE = {
    "workbook": (
        workbook({"A": people_csv(30), "Notes": b"notes\n", "B": people_csv(10)}),
        "sheet 1 and sheet 3",
    ),
    "zip": (
        zip_of({"people.csv": people_csv(30), "copy.csv": people_csv(10)}),
        "ZIP member 1 and ZIP member 2",
    ),
}


@pytest.fixture(params=["duckdb", "postgresql"])
def on_both(request: pytest.FixtureRequest, service: TrialService) -> Iterator[TrialService]:
    """The service with its warehouse on DuckDB, then on PostgreSQL (skipped without a server
    on 127.0.0.1:5432)."""
    if request.param == "duckdb":
        yield service
        return
    if not postgres_available():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    with postgres_database("trial_refused_test") as url:
        service.env["TRIAL_WAREHOUSE_URL"] = url
        yield service


def trial_ingest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ingest.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, **(env or {})},
    )


def audit(service: TrialService) -> list[tuple[str, str | None, str, str | None]]:
    """(la_code, dataset, status, reason) of every audit row, in LA order."""
    warehouse = service.warehouse()
    table = warehouse.table("ops", "submissions")
    query = sa.select(table.c.la_code, table.c.dataset, table.c.status, table.c.reason)
    with warehouse.engine.connect() as conn:
        rows = sorted((tuple(r) for r in conn.execute(query)), key=str)
    warehouse.dispose()
    return rows  # type: ignore[return-value]


def test_the_checker_refuses_the_512_gb_workbook_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "return.xlsx"
    path.write_bytes(far_cell_workbook("XFD1048576"))

    done = trial_ingest("check", str(path), "--la", "201")

    assert done.returncode == EXIT_FILE_REJECTED, done.stderr[-2000:]
    assert f"[error] {XLSX_OUT_OF_BOUNDS}: the workbook has cells too far" in done.stdout
    assert "beyond column 256 or row 1,048,576" in done.stdout


def test_the_512_gb_workbook_is_rejected_and_the_run_goes_on(on_both: TrialService) -> None:
    service = on_both
    service.deliver("201", "return.xlsx", far_cell_workbook("XFD1048576"))
    service.deliver("202", "people.csv", people_csv(3))

    done = trial_ingest("run", env=service.env)

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert audit(service) == [
        ("201", None, "rejected", XLSX_OUT_OF_BOUNDS),
        ("202", "people", "accepted", None),
    ]
    assert len(service.clean_people("202")) == 3
    [report] = service.reports("201")
    text = report.read_text()
    assert "REJECTED" in text and f"{XLSX_OUT_OF_BOUNDS}: the workbook has cells" in text
    assert service.inbox("201") == [] and service.inbox("202") == []


@pytest.mark.parametrize("kind", TWICE)
def test_the_checker_refuses_a_dataset_twice_in_one_file(kind: str, tmp_path: Path) -> None:
    content, where = TWICE[kind]
    path = tmp_path / f"return.{kind}"
    path.write_bytes(content)

    done = trial_ingest("check", str(path), "--la", "201", "--today", "2026-01-15")

    assert done.returncode == EXIT_FILE_REJECTED, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"[error] {where}: {DATASET_REPEATED}: the file holds the same dataset" in done.stdout
    assert "people is in each of them" in done.stdout


@pytest.mark.parametrize("kind", TWICE)
def test_a_dataset_twice_in_one_file_is_rejected_whole_and_changes_nothing(
    kind: str, on_both: TrialService
) -> None:
    service = on_both
    service.deliver("201", "people.csv", people_csv(30))
    assert service.run().exit_code == 0
    before = service.clean_people("201")
    content, where = TWICE[kind]
    service.deliver("201", f"again.{kind}", content)
    service.deliver("202", "people.csv", people_csv(3))

    done = trial_ingest("run", env=service.env)

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert audit(service) == [
        ("201", "people", "accepted", None),
        ("201", None, "rejected", DATASET_REPEATED),
        ("202", "people", "accepted", None),
    ]
    assert service.clean_people("201") == before
    assert len(service.clean_people("202")) == 3
    text = service.reports("201")[-1].read_text()
    assert "REJECTED" in text and f"{where}: {DATASET_REPEATED}" in text
