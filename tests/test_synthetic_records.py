"""The synthetic trial's records checked against every rule of the contract, the links between
its datasets, and the bulk people file."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest
from test_synthetic import SEED

from pseudonymise.identifiers import nhs_number_is_valid, postcode_is_valid, upn_is_valid
from schemas import rules
from schemas.contract import (
    TRIAL_START,
    ChildAgeInTrial,
    Dataset,
    Field,
    Kind,
    OneRequired,
    OnlyWhenBlank,
    OnOrAfter,
    RequiredUnless,
    RequiredWhen,
    RowRule,
    normalise_code,
)
from schemas.datasets import DATASETS
from schemas.rules import Severity
from synthetic import write_people_csv
from synthetic.bulk import BREAKAGES
from synthetic.records import Cell, LaRecords, Row, age_on
from synthetic.trial import build_trial

EXTRACT_DAY = date(2026, 1, 12)  # no date in a return may be after the day it was extracted


# --- every rule of the contract, checked on the records themselves -------------------------


def rule_breaches(dataset: Dataset, rows: list[Row]) -> set[tuple[int, str, str]]:
    """(row index, column, rule) for every rule of the dataset's declaration a row breaks."""
    found = set()
    for index, row in enumerate(rows):
        for spec in dataset.fields:
            found |= {
                (index, spec.name, rule) for rule in cell_breaches(spec, row.values.get(spec.name))
            }
        for rule in dataset.rules:
            if row_breaks(rule, row.values):
                found.add((index, rule.column, rule.rule))
    keys = Counter(tuple(row.values.get(k) for k in dataset.key) for row in rows)
    for index, row in enumerate(rows):
        if keys[tuple(row.values.get(k) for k in dataset.key)] > 1:
            found.add((index, dataset.key[0], rules.DUPLICATE_KEY))
    return found


def cell_breaches(spec: Field, value: Cell) -> list[str]:
    if value is None:
        return [rules.REQUIRED] if spec.required else []
    if spec.max_length is not None and len(str(value)) > spec.max_length:
        return [rules.MAX_LENGTH]
    checks = {
        Kind.CODE: lambda: normalise_code(str(value)) in (*spec.codes, *spec.code_map),
        Kind.CODES: lambda: set(str(value).split(";")) <= set(spec.codes),
        Kind.FLAG: lambda: isinstance(value, bool),
        Kind.NHS_NUMBER: lambda: nhs_number_is_valid(str(value)),
        Kind.UPN: lambda: upn_is_valid(str(value)),
        Kind.POSTCODE: lambda: postcode_is_valid(str(value)),
    }
    broken = {
        Kind.CODE: rules.CODE_LIST,
        Kind.CODES: rules.CODE_LIST,
        Kind.FLAG: rules.FLAG_FORMAT,
        Kind.NHS_NUMBER: rules.NHS_NUMBER_CHECK,
        Kind.UPN: rules.UPN_CHECK,
        Kind.POSTCODE: rules.POSTCODE_FORMAT,
    }
    if spec.kind in checks:
        return [] if checks[spec.kind]() else [broken[spec.kind]]
    if spec.kind is Kind.DATE:
        return _date_breaches(spec, value)
    if spec.kind in (Kind.INTEGER, Kind.NUMBER):
        return _number_breaches(spec, value)
    return []


def _date_breaches(spec: Field, value: Cell) -> list[str]:
    if not isinstance(value, date):
        return [rules.DATE_FORMAT]
    if spec.not_in_future and value > EXTRACT_DAY:
        return [rules.NOT_IN_FUTURE]
    if (spec.earliest and value < spec.earliest) or (spec.latest and value > spec.latest):
        return [rules.OUT_OF_RANGE]
    return []


def _number_breaches(spec: Field, value: Cell) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return [rules.INTEGER_FORMAT if spec.kind is Kind.INTEGER else rules.NUMBER_FORMAT]
    if spec.kind is Kind.INTEGER and not isinstance(value, int):
        return [rules.INTEGER_FORMAT]
    low = spec.minimum is not None and (
        value <= spec.minimum if spec.minimum_exclusive else value < spec.minimum
    )
    high = spec.maximum is not None and value > spec.maximum
    return [rules.OUT_OF_RANGE] if low or high else []


def row_breaks(rule: RowRule, values: dict[str, Cell]) -> bool:
    if isinstance(rule, OnOrAfter):
        later, earlier = values.get(rule.later), values.get(rule.earlier)
        return isinstance(later, date) and isinstance(earlier, date) and later < earlier
    if isinstance(rule, RequiredWhen):
        condition = values.get(rule.condition_field)
        applies = condition in rule.equals if rule.equals else condition is not None
        return applies and values.get(rule.target) is None
    if isinstance(rule, RequiredUnless):
        exempt = values.get(rule.condition_field) in rule.equals
        return not exempt and values.get(rule.target) is None
    if isinstance(rule, OnlyWhenBlank):
        return values.get(rule.target) is not None and values.get(rule.other) is not None
    if isinstance(rule, OneRequired):
        return all(values.get(name) is None for name in rule.fields)
    assert isinstance(rule, ChildAgeInTrial)
    born = values.get(rule.birth_field)
    return (
        values.get(rule.role_field) == rule.role
        and isinstance(born, date)
        and age_on(born, TRIAL_START) >= 18
    )


@pytest.fixture(scope="module")
def records() -> list[LaRecords]:
    return build_trial(seed=SEED).las


def test_records_break_exactly_the_planted_rules(records: list[LaRecords]) -> None:
    for la in records:
        for name, dataset in DATASETS.items():
            rows = la.rows(name)
            planted = {
                (i, r.planted.column, r.planted.rule) for i, r in enumerate(rows) if r.planted
            }
            assert rule_breaches(dataset, rows) == planted, (la.la_code, name)


def test_clean_records_break_no_rule() -> None:
    for seed in (1, 2):
        for la in build_trial(seed=seed, families_per_la=15, mess=False).las:
            for name, dataset in DATASETS.items():
                assert rule_breaches(dataset, la.rows(name)) == set(), (seed, la.la_code, name)


def _loaded(la: LaRecords, dataset: str) -> list[dict[str, Cell]]:
    """The rows a correct service would load: planted errors are rejected, warnings load."""
    return [
        r.values
        for r in la.rows(dataset)
        if r.planted is None or r.planted.severity is Severity.WARNING
    ]


def test_loaded_rows_leave_no_orphans(records: list[LaRecords]) -> None:
    for la in records:
        people = {v["person_id"]: v for v in _loaded(la, "people")}
        families = {v["family_id"] for v in people.values()}
        workers = {v["keyworker_id"] for v in _loaded(la, "keyworkers")}
        for episode in _loaded(la, "episodes"):
            assert episode["family_id"] in families and episode["keyworker_id"] in workers
        for event in _loaded(la, "csc_events"):
            assert event["person_id"] in people
        for activity in _loaded(la, "practice_activity"):
            assert activity["keyworker_id"] in workers
            assert activity["family_id"] is None or activity["family_id"] in families
        for answer in _loaded(la, "score15"):
            assert people[answer["person_id"]]["family_id"] == answer["family_id"]
        for withdrawal in _loaded(la, "withdrawals"):
            assert withdrawal["person_id"] in people or withdrawal["family_id"] in families


def test_score15_respondents_are_twelve_or_over(records: list[LaRecords]) -> None:
    for la in records:
        born = {r.values["person_id"]: r.values["date_of_birth"] for r in la.rows("people")}
        for answer in _loaded(la, "score15"):
            birth, completed = born[answer["person_id"]], answer["completed_date"]
            assert isinstance(birth, date) and isinstance(completed, date)
            assert age_on(birth, completed) >= 12


def test_families_have_two_to_six_people_and_a_parent(records: list[LaRecords]) -> None:
    for la in records:
        members: dict[Cell, list[Cell]] = {}
        seen: set[Cell] = set()
        for row in la.rows("people"):
            if row.values["person_id"] not in seen:  # a planted duplicate is one person
                seen.add(row.values["person_id"])
                members.setdefault(row.values["family_id"], []).append(row.values["role"])
        assert all(2 <= len(roles) <= 6 for roles in members.values())
        assert all("PARENT_CARER" in roles for roles in members.values())


def test_every_la_has_ten_to_twenty_keyworkers(records: list[LaRecords]) -> None:
    for la in records:
        workers = {r.values["keyworker_id"] for r in la.rows("keyworkers")}
        assert 10 <= len(workers) <= 20


@pytest.mark.parametrize("families", [1, 3])
def test_tiny_trials_still_deliver_every_dataset_with_exact_problems(families: int) -> None:
    for la in build_trial(seed=3, families_per_la=families).las:
        for name, dataset in DATASETS.items():
            rows = la.rows(name)
            planted = {
                (i, r.planted.column, r.planted.rule) for i, r in enumerate(rows) if r.planted
            }
            assert _loaded(la, name), (la.la_code, name)
            assert rule_breaches(dataset, rows) == planted, (la.la_code, name)


# --- the bulk people file ----------------------------------------------------------------


def _bulk(path: Path, bad_fraction: float) -> pl.DataFrame:
    write_people_csv(path, 4_000, seed=9, bad_fraction=bad_fraction, la_code="907")
    return pl.read_csv(path, infer_schema=False)


def test_bulk_people_file_is_valid_and_complete(tmp_path: Path) -> None:
    people = _bulk(tmp_path / "people.csv", 0.0)
    assert people.columns == [f.name for f in DATASETS["people"].fields]
    assert people.height == 4_000 and people.get_column("person_id").n_unique() == 4_000
    for column in ("person_id", "family_id", "nhs_number", "upn", "postcode", "first_name",
                   "last_name", "address_line_1", "date_of_birth"):  # fmt: skip
        assert people.get_column(column).null_count() == 0, column
    rows = [Row(dict(r)) for r in people.iter_rows(named=True)]
    for row in rows:
        row.values["date_of_birth"] = date.fromisoformat(str(row.values["date_of_birth"]))
    assert rule_breaches(DATASETS["people"], rows) == set()


def test_bulk_bad_rows_break_one_field_each_across_columns(tmp_path: Path) -> None:
    clean = _bulk(tmp_path / "clean.csv", 0.0)
    messy = _bulk(tmp_path / "messy.csv", 0.25)
    differs = pl.DataFrame(
        {c: clean.get_column(c).ne_missing(messy.get_column(c)) for c in clean.columns}
    )
    per_row = differs.sum_horizontal()
    assert per_row.max() == 1
    assert 0.2 < (per_row == 1).mean() < 0.3  # type: ignore[operator]
    assert {c for c in differs.columns if differs.get_column(c).any()} == set(BREAKAGES)


@pytest.mark.slow
def test_bulk_writes_a_million_rows_in_seconds(tmp_path: Path) -> None:
    started = datetime.now()
    write_people_csv(tmp_path / "big.csv", 1_000_000, seed=1, bad_fraction=0.1)
    assert (datetime.now() - started).total_seconds() < 15
