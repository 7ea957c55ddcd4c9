"""The pandera schemas built from the dataset declarations: every rule, on hand-made frames."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pandera.config import ValidationDepth, config_context

from schemas import rules
from schemas.contract import Dataset
from schemas.datasets import DATASETS
from schemas.datasets.csc_events import CSC_EVENTS
from schemas.datasets.episodes import EPISODES
from schemas.datasets.keyworkers import KEYWORKERS
from schemas.datasets.people import PEOPLE
from schemas.datasets.practice_activity import PRACTICE_ACTIVITY
from schemas.datasets.withdrawals import WITHDRAWALS
from schemas.models import (
    SCHEMA_BUG_MESSAGE,
    schema_for,
    split_check_name,
    validate_rows,
)
from schemas.outcome import ISSUE_SCHEMA, ROW_NUMBER
from schemas.treatment import (
    has_presence_helper,
    presence_column,
    validated_column,
    validated_dtype,
)

TODAY = date(2026, 3, 1)

Issue = tuple[int, str, str]


def pseudonymised(dataset: Dataset, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A frame shaped like `pseudonymise_table`'s output; rows are numbered from 2.

    Cells are given by validated column name; a presence helper defaults to "the token or
    district is present" unless the row sets it.
    """
    schema: dict[str, pl.DataType] = {ROW_NUMBER: pl.Int64()}
    schema |= {validated_column(f): validated_dtype(f) for f in dataset.stored_fields}
    helpers = [f for f in dataset.stored_fields if has_presence_helper(f)]
    schema |= {presence_column(f): pl.Boolean() for f in helpers}
    records = []
    for number, row in enumerate(rows, start=2):
        record: dict[str, Any] = {ROW_NUMBER: number}
        record |= {validated_column(f): row.get(validated_column(f)) for f in dataset.stored_fields}
        for f in helpers:
            record[presence_column(f)] = row.get(
                presence_column(f), record[validated_column(f)] is not None
            )
        records.append(record)
    return pl.DataFrame(records, schema=schema)


def issues(dataset: Dataset, rows: list[dict[str, Any]], today: date = TODAY) -> set[Issue]:
    found = validate_rows(pseudonymised(dataset, rows), dataset, today=today)
    assert found.schema == pl.Schema(ISSUE_SCHEMA)
    assert set(found.get_column("severity")) <= {rules.Severity.ERROR.value}
    return {(r, c, rule) for r, c, rule, _ in found.iter_rows()}


PERSON = {
    "person_token": "a" * 32,
    "family_token": "b" * 32,
    "role": "CHILD",
    "sex": "F",
    "date_of_birth": date(2015, 5, 5),
}
EPISODE = {
    "episode_token": "e" * 32,
    "family_token": "f" * 32,
    "keyworker_token": "k" * 32,
    "referral_date": date(2024, 10, 1),
    "start_date": date(2024, 10, 2),
}
KEYWORKER = {"keyworker_token": "k" * 32, "role": "KEYWORKER", "start_date": date(2024, 1, 1)}
ACTIVITY = {
    "activity_token": "a" * 32,
    "keyworker_token": "k" * 32,
    "activity_type": "HUB_EVENT",
    "activity_date": date(2025, 1, 1),
}
EVENT = {
    "event_token": "c" * 32,
    "person_token": "p" * 32,
    "event_type": "S47",
    "start_date": date(2025, 1, 1),
}


def person(**changes: Any) -> dict[str, Any]:
    return PERSON | {"person_token": changes.pop("token", None) or _fresh_token()} | changes


_counter = iter(range(10**9))


def _fresh_token() -> str:
    return f"{next(_counter):032x}"


def test_a_valid_row_of_every_dataset_passes() -> None:
    assert issues(PEOPLE, [person()]) == set()
    assert issues(EPISODES, [EPISODE]) == set()
    assert issues(KEYWORKERS, [KEYWORKER]) == set()
    assert issues(PRACTICE_ACTIVITY, [ACTIVITY]) == set()
    assert issues(CSC_EVENTS, [EVENT]) == set()
    assert issues(WITHDRAWALS, [{"person_token": "p" * 32, "withdrawal_date": TODAY}]) == set()


def test_required_codes_and_code_lists() -> None:
    found = issues(
        PEOPLE,
        [
            person(role=None),
            person(sex="X"),
            person(disability="MOB;XYZ"),
            person(disability="MOB;LD"),
        ],
    )
    assert found == {
        (2, "role", rules.REQUIRED),
        (3, "sex", rules.CODE_LIST),
        (4, "disability", rules.CODE_LIST),
    }


def test_a_token_field_is_required_by_presence_not_by_token() -> None:
    blank = person(person_token=None, **{presence_column(PEOPLE.field("person_id")): False})
    # Present in the file but null as a token: never "required but blank".
    nulled = person(person_token=None, **{presence_column(PEOPLE.field("person_id")): True})
    assert issues(PEOPLE, [blank, nulled]) == {(2, "person_id", rules.REQUIRED)}


def test_numeric_ranges_including_an_exclusive_minimum() -> None:
    rows = [
        KEYWORKER | {"keyworker_token": f"{i:032x}", "fte": fte}
        for i, fte in enumerate([0.0, 0.0001, 1.0, 1.5, None])
    ]
    assert issues(KEYWORKERS, rows) == {
        (2, "fte", rules.OUT_OF_RANGE),
        (5, "fte", rules.OUT_OF_RANGE),
    }


def test_date_bounds_of_the_trial_window() -> None:
    days = [date(2024, 8, 31), date(2024, 9, 1), date(2025, 12, 31), date(2026, 1, 1)]
    rows = [
        ACTIVITY | {"activity_token": f"{i:032x}", "activity_date": d} for i, d in enumerate(days)
    ]
    assert issues(PRACTICE_ACTIVITY, rows) == {
        (2, "activity_date", rules.OUT_OF_RANGE),
        (5, "activity_date", rules.OUT_OF_RANGE),
    }


def test_not_in_future_is_relative_to_the_given_today() -> None:
    rows = [person(date_of_birth=date(2020, 6, 1))]
    assert issues(PEOPLE, rows, today=date(2020, 6, 1)) == set()
    assert issues(PEOPLE, rows, today=date(2020, 5, 31)) == {
        (2, "date_of_birth", rules.NOT_IN_FUTURE)
    }


def test_a_duplicated_key_rejects_every_row_carrying_it() -> None:
    rows = [person(token="1" * 32), person(token="2" * 32), person(token="1" * 32)]
    rows.append(person(token="1" * 32))
    assert issues(PEOPLE, rows) == {
        (2, "person_id", rules.DUPLICATE_KEY),
        (4, "person_id", rules.DUPLICATE_KEY),
        (5, "person_id", rules.DUPLICATE_KEY),
    }


def test_a_blank_key_is_not_a_duplicate_but_a_partly_blank_compound_key_can_be() -> None:
    blank_id = {presence_column(PEOPLE.field("person_id")): False}
    blanks = [person(person_token=None, **blank_id), person(person_token=None, **blank_id)]
    assert issues(PEOPLE, blanks) == {
        (2, "person_id", rules.REQUIRED),
        (3, "person_id", rules.REQUIRED),
    }

    withdrawn = {"withdrawal_date": TODAY}
    rows = [
        withdrawn | {"person_token": "p" * 32},
        withdrawn | {"person_token": "p" * 32},
        withdrawn | {"person_token": "p" * 32, "family_token": "f" * 32},
        withdrawn | {"person_token": "q" * 32, "family_token": "f" * 32},
        withdrawn | {"person_token": "q" * 32, "family_token": "f" * 32},
    ]
    assert issues(WITHDRAWALS, rows) == {
        (2, "person_id", rules.DUPLICATE_KEY),
        (3, "person_id", rules.DUPLICATE_KEY),
        (5, "person_id", rules.DUPLICATE_KEY),
        (5, "family_id", rules.DUPLICATE_KEY),
        (6, "person_id", rules.DUPLICATE_KEY),
        (6, "family_id", rules.DUPLICATE_KEY),
    }


def test_one_of_person_or_family_is_required() -> None:
    rows: list[dict[str, Any]] = [
        {"withdrawal_date": TODAY},
        {"family_token": "f" * 32, "withdrawal_date": TODAY},
    ]
    assert issues(WITHDRAWALS, rows) == {(2, "person_id", "one_of_person_id_or_family_id_required")}


def test_on_or_after_and_required_when_given() -> None:
    rows = [
        EPISODE | {"episode_token": "1" * 32, "start_date": date(2024, 9, 30)},
        EPISODE | {"episode_token": "2" * 32, "end_date": date(2025, 1, 1)},
        EPISODE | {"episode_token": "3" * 32, "end_date": date(2025, 1, 1), "end_reason": "OTHER"},
        EPISODE | {"episode_token": "4" * 32, "end_reason": "OTHER", "assessment_date": None},
    ]
    assert issues(EPISODES, rows) == {
        (2, "start_date", "on_or_after_referral_date"),
        (3, "end_reason", "required_when_end_date"),
    }


def test_required_when_a_code_has_a_value() -> None:
    rows = [
        EVENT | {"event_token": "1" * 32, "event_type": "CP_PLAN"},
        EVENT | {"event_token": "2" * 32, "event_type": "CP_PLAN", "category_of_abuse": "NEG"},
        EVENT | {"event_token": "3" * 32, "event_type": "REFERRAL"},
    ]
    assert issues(CSC_EVENTS, rows) == {
        (2, "category_of_abuse", "required_when_event_type_cp_plan"),
        (4, "referral_source", "required_when_event_type_referral"),
    }


def test_date_of_birth_is_required_unless_unborn() -> None:
    rows = [
        person(role="PARENT_CARER", date_of_birth=None),
        person(role="UNBORN", date_of_birth=None, expected_date_of_birth=date(2026, 5, 1)),
        person(role="UNBORN", date_of_birth=None),
    ]
    assert issues(PEOPLE, rows) == {
        (2, "date_of_birth", "required_unless_role_unborn"),
        (4, "expected_date_of_birth", "required_when_role_unborn"),
    }


def test_upn_unknown_only_when_the_upn_was_blank_in_the_file() -> None:
    upn_given = {presence_column(PEOPLE.field("upn")): True}
    rows = [
        person(upn_unknown="UN1"),
        person(upn_unknown="UN1", upn_token="u" * 32),
        # A UPN failing its check is a null token but was not blank.
        person(upn_unknown="UN1", upn_token=None, **upn_given),
    ]
    assert issues(PEOPLE, rows) == {
        (3, "upn_unknown", "only_when_upn_blank"),
        (4, "upn_unknown", "only_when_upn_blank"),
    }


@pytest.mark.parametrize(
    ("born", "role", "fails"),
    [
        (date(2006, 9, 1), "CHILD", True),  # 18 on the day the window opens
        (date(2006, 9, 2), "CHILD", False),
        (date(2000, 1, 1), "PARENT_CARER", False),
        (date(2000, 1, 1), "BAD", False),  # reported as a code, not as an age
    ],
)
def test_a_child_is_under_18_at_some_time_in_the_window(born: date, role: str, fails: bool) -> None:
    found = issues(PEOPLE, [person(date_of_birth=born, role=role)])
    assert ((2, "date_of_birth", "child_under_18_in_trial_window") in found) is fails


def test_date_of_death_not_before_birth() -> None:
    rows = [
        person(date_of_death=date(2015, 5, 4)),
        person(date_of_death=date(2015, 5, 5)),
    ]
    assert issues(PEOPLE, rows) == {(2, "date_of_death", "on_or_after_date_of_birth")}


def test_every_check_names_a_field_of_its_dataset_and_a_known_rule() -> None:
    known = set(rules.RULE_TEXT)
    for dataset in DATASETS.values():
        row_rules = {r.rule for r in dataset.rules}
        names = {f.name for f in dataset.stored_fields}
        for column in schema_for(dataset).columns.values():
            for check in column.checks:
                field, rule = split_check_name(check.name)
                assert field in names
                assert rule in known or rule in row_rules


def test_schema_is_built_once_per_dataset() -> None:
    assert schema_for(PEOPLE) is schema_for(PEOPLE)


def test_data_checks_run_even_when_pandera_is_configured_for_schema_only() -> None:
    with config_context(validation_depth=ValidationDepth.SCHEMA_ONLY, validation_enabled=False):
        found = issues(PEOPLE, [person(sex="X")])
    assert found == {(2, "sex", rules.CODE_LIST)}


def test_a_frame_of_the_wrong_shape_is_a_fault_that_quotes_nothing() -> None:
    canary = "CANARY-SHAPE-8841"
    frame = pseudonymised(PEOPLE, [person(sex=canary)])
    with pytest.raises(RuntimeError) as raised:
        validate_rows(frame.drop("role"), PEOPLE, today=TODAY)
    assert str(raised.value).startswith(SCHEMA_BUG_MESSAGE)
    assert "COLUMN_NOT_IN_DATAFRAME" in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__context__ is None

    wrong_dtype = frame.with_columns(pl.col("date_of_birth").cast(pl.String))
    with pytest.raises(RuntimeError) as raised:
        validate_rows(wrong_dtype, PEOPLE, today=TODAY)
    assert canary not in repr(raised.value)


def test_issues_map_pandera_positions_back_to_row_numbers() -> None:
    frame = pseudonymised(PEOPLE, [person(), person(sex="X")]).with_columns(
        pl.Series(ROW_NUMBER, [40, 17])
    )
    found = validate_rows(frame, PEOPLE, today=TODAY)
    assert found.rows() == [(17, "sex", rules.CODE_LIST, "error")]


# --- property: the vectorised rules agree with a plain reading of the spec ------------------

_dates = st.one_of(st.none(), st.dates(date(2023, 1, 1), date(2027, 1, 1)))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(-1, 2, allow_nan=False)),
            _dates,
            _dates,
            st.sampled_from(["1", "2", "3", None]),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_keyworker_rules_agree_with_a_plain_oracle(
    cells: list[tuple[float | None, date | None, date | None, str | None]],
) -> None:
    rows = [
        {
            "keyworker_token": key and key * 32,
            presence_column(KEYWORKERS.field("keyworker_id")): key is not None,
            "role": "KEYWORKER",
            "fte": fte,
            "start_date": start,
            "end_date": end,
        }
        for fte, start, end, key in cells
    ]
    expected: set[Issue] = set()
    keys = [key for *_, key in cells]
    for number, (fte, start, end, key) in enumerate(cells, start=2):
        if fte is not None and not 0 < fte <= 1:
            expected.add((number, "fte", rules.OUT_OF_RANGE))
        if start is None:
            expected.add((number, "start_date", rules.REQUIRED))
        if start is not None and end is not None and end < start:
            expected.add((number, "end_date", "on_or_after_start_date"))
        if key is None:
            expected.add((number, "keyworker_id", rules.REQUIRED))
        elif keys.count(key) > 1:
            expected.add((number, "keyworker_id", rules.DUPLICATE_KEY))
    assert issues(KEYWORKERS, rows) == expected


def test_a_future_date_of_birth_is_one_day_sensitive() -> None:
    rows = [person(date_of_birth=TODAY), person(date_of_birth=TODAY + timedelta(days=1))]
    assert issues(PEOPLE, rows) == {(3, "date_of_birth", rules.NOT_IN_FUTURE)}


_disability_items = st.sampled_from(
    [*PEOPLE.field("disability").codes, "", "XX", "MOB.", ".*", "LD|X"]
)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(_disability_items, min_size=1, max_size=4), min_size=1, max_size=10))
def test_a_code_list_cell_passes_only_when_every_item_is_a_code(items: list[list[str]]) -> None:
    codes = set(PEOPLE.field("disability").codes)
    rows = [person(disability=";".join(cell)) for cell in items]
    expected = {
        (number, "disability", rules.CODE_LIST)
        for number, cell in enumerate(items, start=2)
        if not all(item in codes for item in cell)
    }
    assert issues(PEOPLE, rows) == expected
