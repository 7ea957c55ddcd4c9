"""Canary values planted in identifiers, free text, bad cells and the file's name are found
nowhere the service wrote after `run_once`: warehouse, DAGSTER_HOME (event log, run storage),
landing store, reports, and the process output."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
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


def files_holding(root: Path, canary: bytes) -> list[str]:
    return [
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and canary.lower() in path.read_bytes().lower()
    ]


def warehouse_values_holding(service: TrialService, canary: str) -> list[str]:
    """Every text column of every warehouse table, searched by SQL (DuckDB compresses
    strings on disk, so a byte search of its file alone would not be enough)."""
    path = service.env["TRIAL_WAREHOUSE_URL"].removeprefix("duckdb:///")
    found = []
    with duckdb.connect(path, read_only=True) as conn:
        columns = conn.execute(
            "SELECT c.table_schema, c.table_name, c.column_name "
            "FROM information_schema.columns c JOIN information_schema.tables t "
            "USING (table_catalog, table_schema, table_name) "
            "WHERE c.data_type = 'VARCHAR' AND t.table_type = 'BASE TABLE'"
        ).fetchall()
        for schema, table, column in columns:
            query = f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}" ILIKE ?'  # noqa: S608
            [(count,)] = conn.execute(query, [f"%{canary}%"]).fetchall()
            if count:
                found.append(f"{schema}.{table}.{column}")
    assert columns, "the warehouse has text columns to search"
    return found


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
    for canary in CANARIES:
        for place in written:
            assert files_holding(place, canary.encode()) == [], canary
        assert warehouse_values_holding(service, canary) == [], canary
        assert canary.lower() not in (output.out + output.err).lower(), canary
