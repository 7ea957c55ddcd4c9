"""Recognising a dataset from its header row, without ever echoing an unrecognised cell."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.contract import LA_CODE_COLUMN, Dataset, Kind, Treatment, normalise_header
from schemas.datasets import DATASETS
from schemas.headers import (
    column_letter,
    describe_columns,
    detect_dataset,
    unknown_column_issues,
)
from schemas.rules import (
    AMBIGUOUS_DATASET,
    EMPTY_FILE,
    UNKNOWN_COLUMN,
    UNKNOWN_DATASET,
    Severity,
)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_field_name_is_recognised_as_its_dataset(name: str) -> None:
    dataset = DATASETS[name]
    headers = [f.name for f in dataset.fields]

    match = detect_dataset(headers)

    assert match.dataset is dataset
    assert match.issue is None
    assert match.unknown_positions == ()
    assert match.columns == dict(enumerate(headers))


@pytest.mark.parametrize("name", sorted(set(DATASETS) - {"withdrawals"}))
def test_required_columns_alone_are_enough(name: str) -> None:
    dataset = DATASETS[name]

    match = detect_dataset(list(reversed(dataset.required_columns)))

    assert match.dataset is dataset


def test_aliases_case_spacing_and_punctuation_are_ignored() -> None:
    headers = [
        "Person ID",
        "FAMILY-ID",
        " role ",
        "DOB",
        "Gender.Current",
        "LAchildID_x",
        "la code",
    ]

    match = detect_dataset(headers)

    assert match.dataset is DATASETS["people"]
    assert match.columns == {
        0: "person_id",
        1: "family_id",
        2: "role",
        3: "date_of_birth",
        4: "sex",
        6: LA_CODE_COLUMN,
    }
    assert match.unknown_positions == (5,)


def test_cin_style_aliases() -> None:
    match = detect_dataset(["LAchildID", "family_id", "role", "PersonBirthDate", "GenderCurrent"])

    assert match.dataset is DATASETS["people"]
    assert sorted(match.columns.values()) == [
        "date_of_birth",
        "family_id",
        "person_id",
        "role",
        "sex",
    ]


@pytest.mark.parametrize("alias", ["LA", "LA_Code", "local authority code", "LEA", "la-number"])
def test_la_code_aliases(alias: str) -> None:
    match = detect_dataset(["keyworker_id", "role", "start_date", alias])

    assert match.columns[3] == LA_CODE_COLUMN


@pytest.mark.parametrize("identifier", ["person_id", "family_id", "Family ID"])
def test_withdrawals_need_a_date_and_one_identifier(identifier: str) -> None:
    match = detect_dataset([identifier, "withdrawal_date"])

    assert match.dataset is DATASETS["withdrawals"]


def test_withdrawals_without_any_identifier_names_the_missing_choice() -> None:
    match = detect_dataset(["withdrawal_date"])

    assert match.dataset is None
    assert match.issue is not None
    assert match.issue.rule == UNKNOWN_DATASET
    assert "closest dataset: withdrawals" in match.issue.detail
    assert "person_id or family_id" in match.issue.detail


def test_unknown_columns_in_a_matched_header_are_warnings_by_letter() -> None:
    headers = ["keyworker_id", "role", "start_date", "Shoe size", "", "Favourite colour"]

    match = detect_dataset(headers)
    issues = unknown_column_issues(match, source="sheet 2")

    assert match.dataset is DATASETS["keyworkers"]
    assert match.unknown_positions == (3, 5)
    assert [(i.rule, i.severity, i.where) for i in issues] == [
        (UNKNOWN_COLUMN, Severity.WARNING, "sheet 2, column D"),
        (UNKNOWN_COLUMN, Severity.WARNING, "sheet 2, column F"),
    ]
    assert all("Shoe" not in i.detail and "colour" not in i.detail for i in issues)


def test_mismatch_names_closest_dataset_missing_columns_and_unknown_letters() -> None:
    headers = ["episode_id", "family_id", "Worker", "referral_date", "start_date", "Extra"]

    match = detect_dataset(headers)

    assert match.dataset is None
    assert match.issue is not None
    assert match.issue.rule == UNKNOWN_DATASET
    assert match.issue.severity is Severity.ERROR
    assert match.issue.detail == (
        "closest dataset: episodes; missing required columns: keyworker_id; "
        "unrecognised columns C, F"
    )


def test_a_data_row_in_place_of_the_header_is_never_echoed() -> None:
    row = ["A12345", "Smith", "Jane", "12/03/2015", "SW1A 1AA", "943 476 5919", "Female"]

    match = detect_dataset(row)

    assert match.issue is not None
    assert match.issue.rule == UNKNOWN_DATASET
    assert "columns A, B, C, D, E, F, G" in match.issue.detail
    for cell in row:
        assert cell not in match.issue.detail
        assert cell not in match.issue.where


canary_cells = st.lists(
    st.text(st.characters(codec="utf-8"), min_size=1).map(lambda text: "QZX" + text),
    min_size=1,
    max_size=30,
)


@given(canary_cells)
def test_unrecognised_cells_never_reach_the_issue(cells: list[str]) -> None:
    match = detect_dataset(cells)

    assert match.issue is not None
    assert "QZX" not in match.issue.detail
    assert "QZX" not in match.issue.where


@given(
    st.lists(st.sampled_from([f.name for f in DATASETS["people"].fields]), max_size=12),
    canary_cells,
)
def test_issues_never_carry_unrecognised_cells_even_beside_known_ones(
    known: list[str], unknown: list[str]
) -> None:
    match = detect_dataset([*unknown, *known])

    texts = [match.issue.detail if match.issue else ""]
    texts += [i.where + i.detail for i in unknown_column_issues(match)]
    assert all("QZX" not in text for text in texts)


def test_two_datasets_matching_is_ambiguous() -> None:
    headers = [
        "keyworker_id",
        "role",
        "start_date",
        "activity_id",
        "activity_type",
        "activity_date",
    ]

    match = detect_dataset(headers)

    assert match.dataset is None
    assert match.issue is not None
    assert match.issue.rule == AMBIGUOUS_DATASET
    assert "keyworkers" in match.issue.detail
    assert "practice_activity" in match.issue.detail


def _toy(name: str, *field_names: str) -> Dataset:
    from schemas.contract import Field

    fields = tuple(Field(n, Kind.TEXT, Treatment.KEEP, "toy", required=True) for n in field_names)
    return Dataset(name=name, description="toy", key=(field_names[0],), fields=fields)


def test_a_dataset_without_unknown_columns_is_preferred() -> None:
    small = _toy("small", "a", "b")
    large = _toy("large", "a", "b", "c")

    match = detect_dataset(["a", "b", "c"], datasets=(small, large))

    assert match.dataset is large


def test_a_field_named_twice_is_not_guessed_at() -> None:
    match = detect_dataset(["person_id", "family_id", "role", "sex", "LAchildID"])

    assert match.dataset is None
    assert match.issue is not None
    assert match.issue.rule == UNKNOWN_DATASET
    assert "columns A, E all name `person_id`" in match.issue.detail


def test_a_dropped_field_named_twice_is_harmless() -> None:
    headers = [*DATASETS["episodes"].required_columns, "Notes", "notes"]

    match = detect_dataset(headers)

    assert match.dataset is DATASETS["episodes"]


@pytest.mark.parametrize("headers", [[], [""], ["", "  ", "\ufeff"]])
def test_a_blank_header_is_an_empty_file(headers: list[str]) -> None:
    match = detect_dataset(headers)

    assert match.issue is not None
    assert match.issue.rule == EMPTY_FILE


def test_no_two_spellings_collide_within_a_dataset() -> None:
    for dataset in DATASETS.values():
        owners: dict[str, str] = {}
        for field in dataset.fields:
            for spelling in (field.name, *field.aliases):
                key = normalise_header(spelling)
                assert owners.setdefault(key, field.name) == field.name, (dataset.name, key)


@pytest.mark.parametrize(
    ("position", "letters"),
    [(0, "A"), (25, "Z"), (26, "AA"), (51, "AZ"), (701, "ZZ"), (702, "AAA")],
)
def test_column_letters(position: int, letters: str) -> None:
    assert column_letter(position) == letters


@given(st.integers(min_value=0, max_value=20_000))
def test_column_letters_are_bijective(position: int) -> None:
    letters = column_letter(position)
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - ord("A") + 1
    assert number - 1 == position


def test_long_column_lists_are_cut_short() -> None:
    assert describe_columns([3]) == "column D"
    assert describe_columns(range(12)) == "columns A, B, C, D, E, F, G, H, I, J and 2 more"
