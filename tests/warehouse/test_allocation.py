"""The allocation file: read strictly, loaded atomically, joined into the analysis views.

Every behaviour test runs on DuckDB and, when the local server answers, on PostgreSQL.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from loads import (
    load,
    people,
)

from ingest.allocation import AllocationError, AllocationRow, read_allocation
from ingest.warehouse import (
    Warehouse,
)

ALLOCATION = (
    "la_code,la_name,arm,randomised_on\n"
    "201,City of London,SYSTEMIC,2024-07-01\n"
    "305,Bromley,CONTROL,2024-07-01\n"
)


def write(tmp_path: Path, text: str, name: str = "allocation.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_allocation_loads_and_replaces_atomically(warehouse: Warehouse, tmp_path: Path) -> None:
    warehouse.load_allocation(write(tmp_path, ALLOCATION))
    smaller = "la_code,la_name,arm,randomised_on\n201,City of London,CONTROL,2024-07-02\n"

    warehouse.load_allocation(write(tmp_path, smaller, "second.csv"))

    assert warehouse.allocation() == [
        AllocationRow("201", "City of London", "CONTROL", date(2024, 7, 2))
    ]


def test_analysis_view_carries_the_arm(warehouse: Warehouse, tmp_path: Path) -> None:
    warehouse.load_allocation(write(tmp_path, ALLOCATION))
    load(warehouse, people("p1"), "a")
    load(warehouse, people("p9"), "a", la_code="999")

    with warehouse.engine.connect() as conn:
        got = conn.execute(
            sa.text(
                "SELECT la_code, la_name, arm, person_token FROM analysis.people ORDER BY la_code"
            )
        ).all()

    assert [tuple(r) for r in got] == [
        ("201", "City of London", "SYSTEMIC", "p1"),
        ("999", None, None, "p9"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("la,name,arm,date\n201,X,SYSTEMIC,2024-07-01\n", "line 1: the header"),
        ("la_code,la_name,arm,randomised_on\n20,CANARY,SYSTEMIC,2024-07-01\n", "line 2: la_code"),
        ("la_code,la_name,arm,randomised_on\n201,X,CANARY,2024-07-01\n", "line 2: arm"),
        ("la_code,la_name,arm,randomised_on\n201,X,SYSTEMIC,01/07/2024\n", "line 2: randomised"),
        ("la_code,la_name,arm,randomised_on\n201,X,SYSTEMIC,2024-02-30\n", "line 2: randomised"),
        ("la_code,la_name,arm,randomised_on\n201,,SYSTEMIC,2024-07-01\n", "line 2: la_name"),
        ("la_code,la_name,arm,randomised_on\n\n201,X,SYSTEMIC\n", "line 3: expected 4 fields"),
        ("la_code,la_name,arm,randomised_on\n", "no LA"),
        (ALLOCATION + "201,CANARY,CONTROL,2024-07-01\n", "LA number 3 repeats"),
    ],
)
def test_allocation_errors_name_the_line_not_the_value(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(AllocationError, match=message) as raised:
        read_allocation(write(tmp_path, text))

    assert "CANARY" not in str(raised.value)


def test_a_bad_allocation_file_keeps_the_loaded_one(duck: Warehouse, tmp_path: Path) -> None:
    duck.load_allocation(write(tmp_path, ALLOCATION))

    with pytest.raises(AllocationError):
        duck.load_allocation(write(tmp_path, ALLOCATION + "201,X,CONTROL,2024-07-01\n", "b.csv"))

    assert [row.la_code for row in duck.allocation()] == ["201", "305"]


def test_allocation_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ALLOCATION.encode())

    assert len(read_allocation(path)) == 2


# --- engines --------------------------------------------------------------------------------
