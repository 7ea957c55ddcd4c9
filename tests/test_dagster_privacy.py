"""Canary values planted in identifiers, free text, bad cells and the file's name are found
nowhere the service wrote after `run_once`: warehouse, DAGSTER_HOME (event log, run storage),
landing store, reports, and the process output. The local version, with a failing run; every
drop x warehouse combination is in `test_e2e_matrix.py` (the search helpers are in `e2e.py`)."""

from __future__ import annotations

import pytest
from e2e import duckdb_text_holding, files_holding
from test_dagster_definitions import TrialService, people_csv, service

__all__ = ["service"]
pytestmark = pytest.mark.slow

CANARIES = (
    "CANARYPID7F3A",
    "CANARYFAM91B2",
    "Canaryfirstname",
    "CANARYROLE",
    "CANARYDOB",
    "CANARYFILENAME",
    "CANARYGARBAGE",
)


def planted_return() -> bytes:
    """Valid rows, then a row carrying a canary in every field it can."""
    return people_csv(3) + (
        b"CANARYPID7F3A,CANARYFAM91B2,CHILD,2015-02-03,F,Canaryfirstname\n"
        b"PER08888,FAM08888,CANARYROLE,CANARYDOB,F,Canaryfirstname\n"
    )


def test_no_canary_is_written_anywhere(
    service: TrialService, capfd: pytest.CaptureFixture[str]
) -> None:
    service.deliver("201", "CANARYFILENAME people.csv", planted_return())
    service.deliver("202", "CANARYFILENAME.xlsx", b"PK\x03\x04 CANARYGARBAGE not a workbook")
    (service.root / "landing").mkdir()
    (service.root / "landing" / "203").write_text("blocks LA 203's landing: its run fails")
    service.deliver("203", "CANARYFILENAME failing.csv", planted_return())

    summary = service.run()
    output = capfd.readouterr()

    assert [f.status for f in summary.files] == ["accepted", "rejected", "failed"]
    written = [service.root / "home", service.root / "landing", *service.drop.glob("*/reports")]
    assert written[-1].exists()
    for place in written:
        assert files_holding(place, CANARIES) == {}, place
    assert duckdb_text_holding(service.env["TRIAL_WAREHOUSE_URL"], CANARIES) == {}
    said = (output.out + output.err).lower()
    assert [canary for canary in CANARIES if canary.lower() in said] == []
