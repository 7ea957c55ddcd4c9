"""Planting known problems in otherwise valid records, so a checker can be held to an exact list.

Each problem breaks one rule in one row that was valid before, and no row gets two. A problem that
rejects its row is only planted where the rejection leaves nothing dangling: never in a person
or key worker that another dataset refers to, never in the last valid row of a family or a file.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from schemas import rules
from schemas.contract import OnOrAfter, RequiredWhen
from schemas.rules import Severity
from synthetic import identifiers
from synthetic.ids import too_long
from synthetic.records import Cell, LaRecords, Planted, Row

UNREADABLE_DATES = ("32/01/2025", "2025-13-01", "00/00/0000")
Values = dict[str, Cell]


@dataclass(frozen=True)
class Problem:
    """One kind of problem: where it can go, and how it spoils the row."""

    dataset: str
    column: str
    rule: str
    applies_to: Callable[[Values], bool]
    spoil: Callable[[Values, random.Random], None]
    severity: Severity = Severity.ERROR


def _has(column: str) -> Callable[[Values], bool]:
    return lambda values: values.get(column) is not None


def _is(column: str, value: str) -> Callable[[Values], bool]:
    return lambda values: values.get(column) == value


def _any_row(values: Values) -> bool:
    return True


def _set(column: str, value: Cell) -> Callable[[Values, random.Random], None]:
    def spoil(values: Values, rng: random.Random) -> None:
        values[column] = value

    return spoil


def _unreadable(column: str) -> Callable[[Values, random.Random], None]:
    def spoil(values: Values, rng: random.Random) -> None:
        values[column] = rng.choice(UNREADABLE_DATES)

    return spoil


def _before(column: str, anchor: str) -> Callable[[Values, random.Random], None]:
    """Move `column` to a few days before `anchor`."""

    def spoil(values: Values, rng: random.Random) -> None:
        anchor_date = values[anchor]
        assert isinstance(anchor_date, date)
        values[column] = anchor_date - timedelta(days=rng.randint(1, 30))

    return spoil


def _lengthen(column: str) -> Callable[[Values, random.Random], None]:
    def spoil(values: Values, rng: random.Random) -> None:
        values[column] = too_long(str(values[column]), rng)

    return spoil


def _spoil_nhs(values: Values, rng: random.Random) -> None:
    values["nhs_number"] = identifiers.spoil_nhs_number(str(values["nhs_number"]))


def _spoil_upn(values: Values, rng: random.Random) -> None:
    values["upn"] = identifiers.spoil_upn(str(values["upn"]))


def _out_of_range(dataset: str, column: str, value: float) -> Problem:
    return Problem(dataset, column, rules.OUT_OF_RANGE, _any_row, _set(column, value))


def _order(dataset: str, rule: OnOrAfter) -> Problem:
    """`rule.later` moved before `rule.earlier`: breaks exactly this date-order rule."""
    return Problem(
        dataset, rule.later, rule.rule, _has(rule.later), _before(rule.later, rule.earlier)
    )


def _required_when(dataset: str, rule: RequiredWhen) -> Problem:
    condition = (
        _is(rule.condition_field, rule.equals[0]) if rule.equals else _has(rule.condition_field)
    )
    return Problem(dataset, rule.target, rule.rule, condition, _set(rule.target, None))


def _required(dataset: str, column: str) -> Problem:
    return Problem(dataset, column, rules.REQUIRED, _has(column), _set(column, None))


def _bad_code(dataset: str, column: str, value: str) -> Problem:
    return Problem(dataset, column, rules.CODE_LIST, _any_row, _set(column, value))


def _bad_date(dataset: str, column: str) -> Problem:
    return Problem(dataset, column, rules.DATE_FORMAT, _has(column), _unreadable(column))


def _long_id(dataset: str, column: str) -> Problem:
    return Problem(dataset, column, rules.MAX_LENGTH, _has(column), _lengthen(column))


IDENTIFIER_WARNINGS = (
    Problem(
        "people",
        "nhs_number",
        rules.NHS_NUMBER_CHECK,
        _has("nhs_number"),
        _spoil_nhs,
        Severity.WARNING,
    ),
    Problem("people", "upn", rules.UPN_CHECK, _has("upn"), _spoil_upn, Severity.WARNING),
)
PROBLEMS: tuple[Problem, ...] = (
    *IDENTIFIER_WARNINGS,
    _required("people", "sex"),
    _bad_code("people", "sex", "X"),
    _bad_code("people", "ethnicity", "WBR"),
    _required("episodes", "keyworker_id"),
    _bad_code("episodes", "referral_source", "11"),
    _order("episodes", OnOrAfter("end_date", "start_date")),
    _order("episodes", OnOrAfter("assessment_date", "start_date")),
    _required_when("episodes", RequiredWhen("end_reason", "end_date")),
    _bad_date("episodes", "end_date"),
    _long_id("episodes", "episode_id"),
    _required_when("csc_events", RequiredWhen("category_of_abuse", "event_type", ("CP_PLAN",))),
    _required_when("csc_events", RequiredWhen("referral_source", "event_type", ("REFERRAL",))),
    _order("csc_events", OnOrAfter("end_date", "start_date")),
    _bad_date("csc_events", "end_date"),
    _long_id("csc_events", "event_id"),
    _bad_code("csc_events", "primary_need", "N10"),
    _out_of_range("keyworkers", "fte", 1.5),
    _required("keyworkers", "role"),
    _bad_code("keyworkers", "systemic_training", "ADVANCED"),
    _order("keyworkers", OnOrAfter("end_date", "start_date")),
    _bad_date("keyworkers", "end_date"),
    _out_of_range("practice_activity", "duration_minutes", 720),
    _required("practice_activity", "activity_type"),
    _bad_code("practice_activity", "activity_type", "SUPERVISION"),
    _long_id("practice_activity", "activity_id"),
    _out_of_range("score15", "item_07", 6),
    _required("score15", "time_point"),
    _bad_code("score15", "time_point", "END"),
    _long_id("score15", "response_id"),
)  # fmt: skip

# Datasets whose key may be duplicated (withdrawals' key is a pair, and its file is tiny).
DUPLICABLE = {
    "people": "person_id",
    "episodes": "episode_id",
    "csc_events": "event_id",
    "keyworkers": "keyworker_id",
    "practice_activity": "activity_id",
    "score15": "response_id",
}


def plant_problems(trial: list[LaRecords], rng: random.Random) -> None:
    """Plant every kind of problem at least once, dealt round the LAs, plus identifier warnings.

    A problem that finds no row it may go in (a very small LA) moves on to the next LA.
    """
    deck: list[Problem | str] = [*PROBLEMS, *DUPLICABLE]
    rng.shuffle(deck)
    for index, problem in enumerate(deck):
        for attempt in range(len(trial)):
            la = trial[(index + attempt) % len(trial)]
            if _plant(la, problem, rng):
                break
    for la in trial:
        for warning in IDENTIFIER_WARNINGS:
            for _ in range(rng.randint(0, 2)):
                _plant(la, warning, rng)


def _plant(la: LaRecords, problem: Problem | str, rng: random.Random) -> bool:
    if isinstance(problem, str):
        return _plant_duplicate(la, problem, rng)
    rejects = problem.severity is Severity.ERROR
    candidates = [
        row
        for row in _spare_rows(la, problem.dataset, rejects=rejects)
        if problem.applies_to(row.values)
    ]
    if not candidates:
        return False
    row = rng.choice(candidates)
    problem.spoil(row.values, rng)
    row.planted = Planted(problem.column, problem.rule, problem.severity)
    return True


def _plant_duplicate(la: LaRecords, dataset: str, rng: random.Random) -> bool:
    """A second row with the same key: both rows carry the problem."""
    candidates = _spare_rows(la, dataset, rejects=True, rows_lost=2)
    if not candidates:
        return False
    original = rng.choice(candidates)
    key = DUPLICABLE[dataset]
    copy = Row(dict(original.values))
    original.planted = copy.planted = Planted(key, rules.DUPLICATE_KEY, Severity.ERROR)
    rows = la.rows(dataset)
    rows.insert(rng.randint(rows.index(original) + 1, len(rows)), copy)
    return True


def _spare_rows(la: LaRecords, dataset: str, *, rejects: bool, rows_lost: int = 1) -> list[Row]:
    """Rows still free of problems where this one may go."""
    rows = [row for row in la.rows(dataset) if row.planted is None]
    if not rejects:
        return rows
    if len(rows) <= rows_lost:  # keep at least one valid row in the file
        return []
    if dataset == "people":
        return _spare_people(la, rows)
    if dataset == "keyworkers":
        referenced = _values_of(
            la, (("episodes", "keyworker_id"), ("practice_activity", "keyworker_id"))
        )
        return [row for row in rows if row.values["keyworker_id"] not in referenced]
    return rows


def _spare_people(la: LaRecords, free_rows: list[Row]) -> list[Row]:
    """People nobody else refers to, in families that keep another valid member."""
    referenced = _values_of(
        la, (("csc_events", "person_id"), ("score15", "person_id"), ("withdrawals", "person_id"))
    )
    valid_members = Counter(
        row.values["family_id"]
        for row in la.rows("people")
        if row.planted is None or row.planted.severity is Severity.WARNING
    )
    return [
        row
        for row in free_rows
        if row.values["person_id"] not in referenced and valid_members[row.values["family_id"]] >= 2
    ]


def _values_of(la: LaRecords, columns: tuple[tuple[str, str], ...]) -> set[Cell]:
    return {row.values[column] for dataset, column in columns for row in la.rows(dataset)}
