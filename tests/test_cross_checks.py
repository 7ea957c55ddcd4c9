"""Cross-dataset checks run in the warehouse on tokens: orphans and respondent age."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.warehouse import Warehouse, cross_check_findings, duckdb_url
from pseudonymise.keys import new_key_text, parse_key_text
from pseudonymise.tokens import Tokeniser
from tests.warehouse_returns import load_csv_return

LA = "901"
TOKENISER = Tokeniser(parse_key_text(new_key_text()))
PEOPLE = (
    "person_id,family_id,role,date_of_birth,sex\n"
    "P1,F1,PARENT_CARER,1985-03-04,F\n"
    "P2,F1,CHILD,2014-06-10,M\n"
    "P3,F1,CHILD,2019-01-20,F\n"
)
SCORE15 = (
    "response_id,family_id,person_id,completed_date,time_point\n"
    "R1,F1,P1,2025-01-10,BASELINE\n"  # adult: fine
    "R2,F1,P2,2025-01-10,BASELINE\n"  # aged 10: under 12
    "R3,F2,P9,2025-01-10,BASELINE\n"  # family and person unknown to people
)
EPISODES = (
    "episode_id,family_id,keyworker_id,referral_date,start_date\nE1,F1,K1,2024-10-01,2024-10-02\n"
)


def _load(warehouse: Warehouse, dataset: str, content: str, serial: int) -> None:
    load_csv_return(warehouse, dataset, content, serial, la_code=LA, tokeniser=TOKENISER)


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    warehouse = Warehouse(duckdb_url(tmp_path / "warehouse.duckdb"))
    warehouse.create_schema()
    return warehouse


def test_orphans_and_young_respondents_are_counted_with_row_numbers(warehouse: Warehouse) -> None:
    _load(warehouse, "people", PEOPLE, 1)
    _load(warehouse, "score15", SCORE15, 2)
    _load(warehouse, "episodes", EPISODES, 3)
    found = {(f.dataset, f.column, f.rule): f for f in cross_check_findings(warehouse.engine, LA)}
    assert set(found) == {
        ("score15", "person_id", "orphan_person_id"),
        ("score15", "family_id", "orphan_family_id"),
        ("score15", "person_id", "under_12_on_completed_date"),
        ("episodes", "keyworker_id", "orphan_keyworker_id"),
    }
    assert found[("score15", "person_id", "orphan_person_id")].row_numbers == (4,)
    assert found[("score15", "person_id", "under_12_on_completed_date")].row_numbers == (3,)
    keyworker = found[("episodes", "keyworker_id", "orphan_keyworker_id")]
    assert keyworker.rows == 1 and not keyworker.target_received


def test_nothing_found_when_every_reference_resolves(warehouse: Warehouse) -> None:
    _load(warehouse, "people", PEOPLE, 1)
    _load(warehouse, "keyworkers", "keyworker_id,role,start_date\nK1,KEYWORKER,2020-01-01\n", 2)
    _load(warehouse, "episodes", EPISODES, 3)
    assert cross_check_findings(warehouse.engine, LA) == []


def test_the_checks_run_on_a_warehouse_with_a_schema_suffix(tmp_path: Path) -> None:
    """The key-rotation warehouse's schemas carry a suffix (`clean__rotating`, ...)."""
    suffixed = Warehouse(duckdb_url(tmp_path / "warehouse.duckdb"), schema_suffix="__rotating")
    suffixed.create_schema()
    _load(suffixed, "people", PEOPLE, 1)
    _load(suffixed, "score15", SCORE15, 2)

    found = {(f.column, f.rule): f.row_numbers for f in cross_check_findings(suffixed, LA)}

    assert found == {
        ("person_id", "orphan_person_id"): (4,),
        ("family_id", "orphan_family_id"): (4,),
        ("person_id", "under_12_on_completed_date"): (3,),
    }
