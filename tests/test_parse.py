"""Typing raw text cells: dates, flags, numbers, codes, identifiers, and the issues they raise."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.contract import LA_CODE_COLUMN, Dataset, Treatment
from schemas.datasets import DATASETS
from schemas.outcome import ISSUE_SCHEMA, ROW_NUMBER, RawTable
from schemas.parse import (
    DTYPES,
    EARLIEST_DATE,
    LATEST_DATE,
    _code_items_rejoined,
    _code_list_tidied,
    parse_table,
    typed_schema,
)
from schemas.rules import (
    CONTROL_CHARACTER,
    DATE_AMBIGUOUS,
    DATE_FORMAT,
    DATE_OUT_OF_BOUNDS,
    FLAG_FORMAT,
    INTEGER_FORMAT,
    MAX_LENGTH,
    NUMBER_FORMAT,
    RULE_TEXT,
)

TODAY = date(2025, 6, 1)
PEOPLE = DATASETS["people"]
EPISODES = DATASETS["episodes"]
KEYWORKERS = DATASETS["keyworkers"]
ACTIVITY = DATASETS["practice_activity"]


def _table(
    dataset: Dataset, columns: dict[str, list[str | None]], *, excel: bool = False
) -> RawTable:
    height = len(next(iter(columns.values())))
    frame = pl.DataFrame(
        {ROW_NUMBER: list(range(2, height + 2)), **columns},
        schema={ROW_NUMBER: pl.Int64, **dict.fromkeys(columns, pl.String)},
    )
    return RawTable(dataset, "", frame, from_excel=excel)


def _parse_one(
    dataset: Dataset, column: str, values: list[str | None], *, excel: bool = False
) -> tuple[list[object], list[tuple[int, str, str]]]:
    typed, issues = parse_table(_table(dataset, {column: values}, excel=excel), today=TODAY)
    found = [(r[ROW_NUMBER], r["column"], r["rule"]) for r in issues.iter_rows(named=True)]
    return typed.get_column(column).to_list(), found


# --- dates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2024-03-05",
        "2024-3-5",
        "05/03/2024",
        "5/3/2024",
        " 05/03/2024 ",
        "2024-03-05T00:00:00",
        "2024-03-05T13:45:10.123Z",
        "2024-03-05 13:45",
        "2024-03-05 00:00:00",  # how fastexcel renders a date cell
        "05/03/2024 13:45:10",
        "05/03/2024 1:45 PM",
        "2024-03-05T13:45:00+01:00",
    ],
)
def test_accepted_date_forms(text: str) -> None:
    values, issues = _parse_one(EPISODES, "referral_date", [text])

    assert values == [date(2024, 3, 5)]
    assert issues == []


@pytest.mark.parametrize("text", ["01/02/03", "1/2/24", "01/02/03 10:00"])
def test_two_digit_years_are_ambiguous(text: str) -> None:
    values, issues = _parse_one(EPISODES, "referral_date", [text])

    assert values == [None]
    assert issues == [(2, "referral_date", DATE_AMBIGUOUS)]


@pytest.mark.parametrize(
    "text",
    [
        "31/02/2024",
        "2023-02-29",
        "2024-13-01",
        "00/01/2024",
        "01-02-2024",
        "01.02.2024",
        "March 5th 2024",
        "20240305",
        "+2024-03-05",
        "12024-03-05",
        "2024-03-05x",
        "2024-03-05T",
        "\u0662\u0660\u0662\u0664-\u0660\u0663-\u0660\u0665",  # Arabic-Indic digits
        "45000",  # a serial outside a workbook
    ],
)
def test_unreadable_dates(text: str) -> None:
    values, issues = _parse_one(EPISODES, "referral_date", [text])

    assert values == [None]
    assert issues == [(2, "referral_date", DATE_FORMAT)]


@pytest.mark.parametrize(
    ("serial", "expected"),
    [
        ("1", date(1900, 1, 1)),
        ("59", date(1900, 2, 28)),
        ("61", date(1900, 3, 1)),
        ("45000", date(2023, 3, 15)),
        ("45000.75", date(2023, 3, 15)),
        ("73050", date(2099, 12, 31)),
        ("2024-03-05 00:00:00", date(2024, 3, 5)),
    ],
)
def test_excel_serial_dates_from_workbooks(serial: str, expected: date) -> None:
    values, issues = _parse_one(EPISODES, "referral_date", [serial], excel=True)

    assert values == [expected]
    assert issues == []


@pytest.mark.parametrize("serial", ["0", "60", "2958466", "-5", "1e5", "99999999999999999999"])
def test_impossible_excel_serials(serial: str) -> None:
    values, issues = _parse_one(EPISODES, "referral_date", [serial], excel=True)

    assert values == [None]
    assert issues == [(2, "referral_date", DATE_FORMAT)]


@pytest.mark.parametrize(
    ("text", "excel"),
    [
        ("0000-01-01", False),  # PostgreSQL has no year 0; DuckDB stored it
        ("0001-01-01", False),
        ("1899-12-31", False),
        ("31/12/1899", False),
        ("2100-01-01", False),
        ("9999-12-31", False),
        ("2958465", True),  # Excel's last serial, 9999-12-31
    ],
)
def test_dates_outside_1900_to_2099_are_refused(text: str, excel: bool) -> None:
    values, issues = _parse_one(EPISODES, "referral_date", [text], excel=excel)

    assert values == [None]
    assert issues == [(2, "referral_date", DATE_OUT_OF_BOUNDS)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1900-01-01", EARLIEST_DATE),
        ("01/01/1900", EARLIEST_DATE),
        ("2099-12-31", LATEST_DATE),
        ("31/12/2099", LATEST_DATE),
    ],
)
def test_the_bounds_themselves_are_dates(text: str, expected: date) -> None:
    values, issues = _parse_one(EPISODES, "referral_date", [text])

    assert values == [expected]
    assert issues == []


# --- control characters ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "text"),
    [
        ("team", "North\x00East"),
        ("team", "North\x1bEast"),
        ("team", "\x7f"),
        ("keyworker_id", "K\x00001"),
        ("role", "KEY\x01WORKER"),
        ("fte", "0.\x005"),
        ("start_date", "2024-10-01\x00"),
        ("social_work_qualified", "Y\x08"),
    ],
)
def test_a_control_character_nulls_the_cell_with_one_issue(column: str, text: str) -> None:
    values, issues = _parse_one(KEYWORKERS, column, [text, None])

    assert values == [None, None]
    assert issues == [(2, column, CONTROL_CHARACTER)]


def test_tabs_and_line_breaks_inside_text_are_text() -> None:
    values, issues = _parse_one(KEYWORKERS, "team", ["North\tEast", "North\r\nEast", " x\x0b"])

    assert values == ["North\tEast", "North\r\nEast", "x"]  # white space around is stripped
    assert issues == []


def test_only_the_cells_with_a_control_character_are_refused() -> None:
    values, issues = _parse_one(KEYWORKERS, "team", ["A", "B\x00", "C", "\x00"])

    assert values == ["A", None, "C", None]
    assert issues == [(3, "team", CONTROL_CHARACTER), (5, "team", CONTROL_CHARACTER)]


def test_a_control_character_in_any_chunk_of_a_column_is_found() -> None:
    # The quick scan reads the column's bytes: a column in several chunks must not hide one.
    frame = pl.concat(
        [
            _table(KEYWORKERS, {"team": ["A", "B"]}).frame,
            _table(KEYWORKERS, {"team": ["C\x00"]}).frame.with_columns(
                pl.lit(4, dtype=pl.Int64).alias(ROW_NUMBER)
            ),
        ],
        rechunk=False,
    )
    assert frame.get_column("team").n_chunks() == 2
    typed, issues = parse_table(RawTable(KEYWORKERS, "", frame), today=TODAY)

    assert typed.get_column("team").to_list() == ["A", "B", None]
    assert issues.rows() == [(4, "team", CONTROL_CHARACTER, "error")]


def _serial(day: date) -> str:
    return str((day - date(1899, 12, 30)).days)


_FORMS: dict[str, Callable[[date], str]] = {
    "iso": lambda d: d.isoformat(),
    "uk": lambda d: d.strftime("%d/%m/") + f"{d.year:04d}",
    "uk short": lambda d: f"{d.day}/{d.month}/{d.year:04d}",
    "iso with time": lambda d: d.isoformat() + "T08:30:00",
    "uk with time": lambda d: d.strftime("%d/%m/") + f"{d.year:04d} 08:30",
}


@settings(max_examples=200)
@given(
    st.lists(st.dates(min_value=EARLIEST_DATE, max_value=LATEST_DATE), min_size=1),
    st.sampled_from(sorted(_FORMS)),
    st.booleans(),
)
def test_any_date_in_an_accepted_form_parses_back(days: list[date], form: str, excel: bool) -> None:
    values, issues = _parse_one(
        EPISODES, "start_date", [_FORMS[form](d) for d in days], excel=excel
    )

    assert values == days
    assert issues == []


@given(st.lists(st.dates(min_value=date(1900, 3, 1), max_value=LATEST_DATE), min_size=1))
def test_any_excel_serial_parses_back(days: list[date]) -> None:
    values, issues = _parse_one(EPISODES, "start_date", [_serial(d) for d in days], excel=True)

    assert values == days
    assert issues == []


def test_serial_arithmetic_matches_excel_near_the_phantom_leap_day() -> None:
    assert _serial(date(1900, 3, 1)) == "61"
    assert date(1899, 12, 30) + timedelta(days=45000) == date(2023, 3, 15)


# --- flags, integers, numbers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Y", True),
        ("yes", True),
        (" TRUE ", True),
        ("true", True),
        ("1", True),
        ("n", False),
        ("No", False),
        ("false", False),
        ("0", False),
    ],
)
def test_flags(text: str, expected: bool) -> None:
    values, issues = _parse_one(EPISODES, "need_health", [text])

    assert values == [expected]
    assert issues == []


@pytest.mark.parametrize("text", ["maybe", "Y/N", "2", "1.0", "yess", "T"])
def test_bad_flags(text: str) -> None:
    values, issues = _parse_one(EPISODES, "need_health", [text])

    assert values == [None]
    assert issues == [(2, "need_health", FLAG_FORMAT)]


@given(
    st.lists(st.booleans()),
    st.sampled_from([("Y", "N"), ("yes", "no"), ("TRUE", "False"), ("1", "0")]),
)
def test_flags_round_trip(flags: list[bool], spelling: tuple[str, str]) -> None:
    texts: list[str | None] = [spelling[0] if f else spelling[1] for f in flags]

    values, issues = _parse_one(EPISODES, "need_crime", [*texts, None])

    assert values == [*flags, None]
    assert issues == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3", 3), (" 3 ", 3), ("3.0", 3), ("3.", 3), ("+7", 7), ("-2", -2), ("007", 7)],
)
def test_integers(text: str, expected: int) -> None:
    values, issues = _parse_one(ACTIVITY, "duration_minutes", [text])

    assert values == [expected]
    assert issues == []


@pytest.mark.parametrize(
    "text", ["3.5", "three", "1,000", "1e3", "\u0663", "99999999999999999999", "3.0.0", "--3"]
)
def test_bad_integers(text: str) -> None:
    values, issues = _parse_one(ACTIVITY, "duration_minutes", [text])

    assert values == [None]
    assert issues == [(2, "duration_minutes", INTEGER_FORMAT)]


@given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1)), st.booleans())
def test_integers_round_trip(numbers: list[int], with_fraction: bool) -> None:
    texts: list[str | None] = [f"{n}.0" if with_fraction else str(n) for n in numbers]

    values, issues = _parse_one(ACTIVITY, "duration_minutes", texts)

    assert values == numbers
    assert issues == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.5", 0.5), (".5", 0.5), ("1", 1.0), ("1.", 1.0), ("5e-1", 0.5), ("-0.25", -0.25)],
)
def test_numbers(text: str, expected: float) -> None:
    values, issues = _parse_one(KEYWORKERS, "fte", [text])

    assert values == [expected]
    assert issues == []


@pytest.mark.parametrize("text", ["half", "0,5", "inf", "NaN", "1e999", "1.2.3", "."])
def test_bad_numbers(text: str) -> None:
    values, issues = _parse_one(KEYWORKERS, "fte", [text])

    assert values == [None]
    assert issues == [(2, "fte", NUMBER_FORMAT)]


# --- text, codes, identifiers --------------------------------------------------------------------


def test_identifiers_are_stripped_but_otherwise_untouched() -> None:
    values, issues = _parse_one(PEOPLE, "person_id", ["  000123 ", "a b-c", "", "   ", None])

    assert values == ["000123", "a b-c", None, None, None]
    assert issues == []


def test_identifiers_longer_than_allowed_are_kept_and_flagged() -> None:
    values, issues = _parse_one(PEOPLE, "person_id", ["x" * 36, " " + "y" * 37 + " "])

    assert values == ["x" * 36, "y" * 37]
    assert issues == [(3, "person_id", MAX_LENGTH)]


def test_kept_text_is_bounded() -> None:
    values, issues = _parse_one(EPISODES, "team", ["  North Team ", "t" * 101])

    assert values == ["North Team", "t" * 101]
    assert issues == [(3, "team", MAX_LENGTH)]


def test_nhs_numbers_upns_and_postcodes_stay_raw() -> None:
    table = _table(
        PEOPLE,
        {"nhs_number": [" 943 476 5919 "], "upn": ["a123"], "postcode": ["sw1a 1aa "]},
    )

    typed, issues = parse_table(table, today=TODAY)

    assert typed.select("nhs_number", "upn", "postcode").row(0) == (
        "943 476 5919",
        "a123",
        "sw1a 1aa",
    )
    assert issues.is_empty()


def test_codes_are_normalised_and_mapped_and_unknown_codes_kept() -> None:
    values, issues = _parse_one(PEOPLE, "sex", [" m ", "f", "1", "2", "0", "9", "x", ""])

    assert values == ["M", "F", "M", "F", "U", "U", "X", None]
    assert issues == []


def test_code_lists_are_split_normalised_and_rejoined() -> None:
    values, issues = _parse_one(
        PEOPLE, "disability", [" mob ;; hear;", "NONE", ";", " ", "aut;zzz"]
    )

    assert values == ["MOB;HEAR", "NONE", None, None, "AUT;ZZZ"]
    assert issues == []


CODE_LIST_TEXT = st.text(st.sampled_from("ab;Z9_ \t\n\u00a0\u2003\u3000\x1c\u00dfé;;"), max_size=12)


@settings(max_examples=300)
@given(st.lists(st.one_of(st.none(), CODE_LIST_TEXT), max_size=20))
def test_a_code_list_is_tidied_as_its_items_one_by_one_would_be(values: list[str | None]) -> None:
    frame = pl.DataFrame({"v": values}, schema={"v": pl.String})
    by_items = frame.select(_code_items_rejoined(pl.col("v"), {})).to_series()
    tidied = frame.select(_code_list_tidied(pl.col("v"))).to_series()
    assert tidied.to_list() == by_items.to_list()


# --- the typed frame's contract ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_typed_frame_has_every_stored_field_typed_in_order(name: str) -> None:
    dataset = DATASETS[name]
    table = _table(dataset, {f.name: ["  "] for f in dataset.fields[:2]})

    typed, issues = parse_table(table, today=TODAY)

    expected = {ROW_NUMBER: pl.Int64()} | {f.name: DTYPES[f.kind] for f in dataset.stored_fields}
    assert dict(typed.schema) == expected
    assert typed_schema(dataset.fields, with_la_code=False) == expected
    assert typed.height == 1
    assert dict(issues.schema) == ISSUE_SCHEMA


def test_la_code_is_kept_when_present_and_dropped_fields_never() -> None:
    table = _table(
        PEOPLE,
        {LA_CODE_COLUMN: [" 201 "], "first_name": ["Jane"], "person_id": ["P1"], "notes": ["x"]},
    )

    typed, _ = parse_table(table, today=TODAY)

    assert typed.columns[:3] == [ROW_NUMBER, LA_CODE_COLUMN, "person_id"]
    assert dict(typed.schema) == typed_schema(PEOPLE.fields, with_la_code=True)
    assert typed.get_column(LA_CODE_COLUMN).to_list() == ["201"]
    dropped = {f.name for f in PEOPLE.fields if f.treatment is Treatment.DROP}
    assert dropped.isdisjoint(typed.columns)
    assert "notes" not in typed.columns


def test_issues_are_ordered_by_row_and_carry_error_severity() -> None:
    table = _table(
        KEYWORKERS,
        {"fte": ["x", "0.5", "y"], "start_date": ["bad", "2024-01-01", "01/01/24"]},
    )

    _, issues = parse_table(table, today=TODAY)

    assert issues.rows() == [
        (2, "fte", NUMBER_FORMAT, "error"),
        (2, "start_date", DATE_FORMAT, "error"),
        (4, "fte", NUMBER_FORMAT, "error"),
        (4, "start_date", DATE_AMBIGUOUS, "error"),
    ]


_ALL_KINDS = ["person_id", "role", "date_of_birth", "sex", "disability", "postcode", "nhs_number"]


@settings(max_examples=150)
@given(
    st.lists(
        st.tuples(*(st.one_of(st.none(), st.text()) for _ in range(4))),
        min_size=1,
        max_size=20,
    ),
    st.booleans(),
)
def test_parse_never_raises_and_issues_hold_no_cell_text(
    rows: list[tuple[str | None, ...]], excel: bool
) -> None:
    columns = {"date_of_birth": 0, "sex": 1, "person_id": 2, "disability": 3}
    people = _table(PEOPLE, {c: [r[i] for r in rows] for c, i in columns.items()}, excel=excel)
    keyworkers = _table(
        KEYWORKERS,
        {"fte": [r[0] for r in rows], "social_work_qualified": [r[1] for r in rows]},
        excel=excel,
    )
    activity = _table(ACTIVITY, {"duration_minutes": [r[2] for r in rows]}, excel=excel)

    for table in (people, keyworkers, activity):
        typed, issues = parse_table(table, today=TODAY)

        assert typed.height == len(rows)
        assert dict(issues.schema) == ISSUE_SCHEMA
        assert set(issues.get_column("column")) <= set(table.frame.columns)
        assert set(issues.get_column("rule")) <= set(RULE_TEXT)
        assert set(issues.get_column("severity")) <= {"error"}
        assert set(issues.get_column(ROW_NUMBER)) <= set(table.frame.get_column(ROW_NUMBER))
