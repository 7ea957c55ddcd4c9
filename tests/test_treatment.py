"""The pseudonymisation line: tokens, districts, warnings, presence helpers and coarsening."""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pseudonymise.identifiers import nhs_check_digit, nhs_number_is_valid, upn_check_letter
from pseudonymise.keys import TrialKey
from pseudonymise.tokens import IdentifierKind, Tokeniser
from schemas import rules
from schemas.contract import Dataset, Treatment
from schemas.datasets.episodes import EPISODES
from schemas.datasets.people import PEOPLE
from schemas.outcome import ISSUE_SCHEMA, ROW_NUMBER
from schemas.parse import typed_schema
from schemas.treatment import (
    coarsen_table,
    presence_column,
    pseudonymise_table,
    validated_column,
)

TOKENISER = Tokeniser(TrialKey(b"treatment-tests-key-0123456789abcdef"))
LA = "123"


def typed(dataset: Dataset, rows: list[dict[str, Any]], *, la_code: bool = False) -> pl.DataFrame:
    """A frame shaped like `parse_table`'s output; rows are numbered from 2."""
    schema = typed_schema(dataset.fields, with_la_code=la_code)
    records = [{ROW_NUMBER: n, **row} for n, row in enumerate(rows, start=2)]
    return pl.DataFrame(records, schema=schema)


def nhs_number(first_nine: str) -> str:
    check = nhs_check_digit(first_nine)
    assert check is not None
    return first_nine + str(check)


VALID_NHS = nhs_number("943476591")
INVALID_NHS = VALID_NHS[:9] + str((int(VALID_NHS[9]) + 1) % 10)
VALID_UPN = upn_check_letter("801200005001") + "801200005001"
INVALID_UPN = ("A" if VALID_UPN[0] != "A" else "B") + VALID_UPN[1:]


def test_identifiers_become_tokens_under_their_stored_names() -> None:
    frame, warnings = pseudonymise_table(
        typed(PEOPLE, [{"person_id": "P1", "family_id": "F1", "nhs_number": VALID_NHS}]),
        PEOPLE,
        TOKENISER,
        LA,
    )
    row = frame.row(0, named=True)
    assert row["person_token"] == TOKENISER.tokenise_value("P1", IdentifierKind.PERSON, LA)
    assert row["family_token"] == TOKENISER.tokenise_value("F1", IdentifierKind.FAMILY, LA)
    assert row["nhs_number_token"] == TOKENISER.tokenise_value(
        VALID_NHS, IdentifierKind.NHS_NUMBER, None
    )
    for raw in ("person_id", "family_id", "nhs_number", "upn", "postcode"):
        assert raw not in frame.columns
    assert warnings.is_empty() and warnings.schema == pl.Schema(ISSUE_SCHEMA)


def test_local_ids_are_scoped_to_the_la_and_nhs_numbers_are_not() -> None:
    rows = typed(PEOPLE, [{"person_id": "P1", "nhs_number": VALID_NHS}])
    here, _ = pseudonymise_table(rows, PEOPLE, TOKENISER, "123")
    there, _ = pseudonymise_table(rows, PEOPLE, TOKENISER, "456")
    assert here["person_token"].item() != there["person_token"].item()
    assert here["nhs_number_token"].item() == there["nhs_number_token"].item()


@pytest.mark.parametrize(
    ("field", "valid", "invalid", "rule"),
    [
        ("nhs_number", VALID_NHS, INVALID_NHS, rules.NHS_NUMBER_CHECK),
        ("upn", VALID_UPN, INVALID_UPN, rules.UPN_CHECK),
    ],
)
def test_a_failing_national_number_is_a_warning_and_a_null_token(
    field: str, valid: str, invalid: str, rule: str
) -> None:
    rows: list[dict[str, Any]] = [{field: valid}, {field: invalid}, {field: None}]
    frame, warnings = pseudonymise_table(typed(PEOPLE, rows), PEOPLE, TOKENISER, LA)
    token = PEOPLE.field(field).stored_name
    assert [t is not None for t in frame[token]] == [True, False, False]
    assert frame[presence_column(PEOPLE.field(field))].to_list() == [True, True, False]
    assert warnings.rows() == [(3, field, rule, rules.Severity.WARNING.value)]


def test_postcodes_become_districts_and_invalid_ones_a_warning() -> None:
    rows = [{"postcode": "sw1a 1aa"}, {"postcode": "ZZ99 3VZ"}, {"postcode": "NOT A CODE"}, {}]
    frame, warnings = pseudonymise_table(typed(PEOPLE, rows), PEOPLE, TOKENISER, LA)
    assert frame["postcode_district"].to_list() == ["SW1A", "ZZ99", None, None]
    assert frame[presence_column(PEOPLE.field("postcode"))].to_list() == [True, True, True, False]
    assert warnings.rows() == [(4, "postcode", rules.POSTCODE_FORMAT, "warning")]


def test_dates_stay_exact_until_coarsened_to_the_month() -> None:
    rows = [{"date_of_birth": date(2015, 5, 17), "date_of_death": date(2020, 2, 29)}]
    frame, _ = pseudonymise_table(typed(PEOPLE, rows), PEOPLE, TOKENISER, LA)
    assert frame["date_of_birth"].item() == date(2015, 5, 17)
    stored = coarsen_table(frame, PEOPLE)
    assert stored["month_of_birth"].item() == date(2015, 5, 1)
    assert stored["month_of_death"].item() == date(2020, 2, 1)
    assert "date_of_birth" not in stored.columns


def test_coarsened_frame_has_stored_columns_in_declaration_order_and_no_helpers() -> None:
    frame, _ = pseudonymise_table(typed(PEOPLE, [{"person_id": "P1"}]), PEOPLE, TOKENISER, LA)
    assert any(c.startswith("_") for c in frame.columns)
    stored = coarsen_table(frame, PEOPLE)
    assert stored.columns == [ROW_NUMBER, *(f.stored_name for f in PEOPLE.stored_fields)]


def test_dropped_fields_and_the_la_code_never_pass() -> None:
    raw = typed(EPISODES, [{"episode_id": "E1", "team": "Team A"}], la_code=True).with_columns(
        pl.lit("free text").alias("notes")
    )
    frame, _ = pseudonymise_table(raw, EPISODES, TOKENISER, LA)
    assert "notes" not in frame.columns and "la_code" not in frame.columns
    assert frame["team"].item() == "Team A"  # kept text stays


def test_a_field_missing_from_the_file_is_an_all_null_column() -> None:
    bare = pl.DataFrame({ROW_NUMBER: [2], "person_id": ["P1"]})
    frame, _ = pseudonymise_table(bare, PEOPLE, TOKENISER, LA)
    assert frame["upn_token"].to_list() == [None]
    assert frame["date_of_birth"].dtype == pl.Date


def test_no_raw_identifier_survives() -> None:
    canaries = {
        f.name: f"CANARY{i:02d}X"
        for i, f in enumerate(PEOPLE.stored_fields)
        if f.treatment is Treatment.TOKEN or f.name == "postcode"
    }
    frame, warnings = pseudonymise_table(typed(PEOPLE, [canaries]), PEOPLE, TOKENISER, LA)
    text = str(frame.cast(pl.String).rows()) + str(warnings.rows()) + repr(frame) + repr(warnings)
    assert "CANARY" not in text.upper()


def test_validated_columns_match_what_pseudonymise_table_produces() -> None:
    frame, _ = pseudonymise_table(typed(PEOPLE, [{}]), PEOPLE, TOKENISER, LA)
    expected = [ROW_NUMBER, *(validated_column(f) for f in PEOPLE.stored_fields)]
    assert frame.columns[: len(expected)] == expected


_nhs_like = st.one_of(
    st.from_regex(r"[0-9]{10}", fullmatch=True),
    st.from_regex(r"[0-9]{3} [0-9]{3} [0-9]{4}", fullmatch=True),
    st.from_regex(r"[0-9A-Z ]{1,12}", fullmatch=True).map(str.strip).filter(bool),
    st.from_regex(r"[0-9]{9}", fullmatch=True)
    .filter(lambda nine: nhs_check_digit(nine) is not None)
    .map(nhs_number),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), _nhs_like), min_size=1, max_size=20))
def test_nhs_warnings_and_tokens_agree_with_the_scalar_check(values: list[str | None]) -> None:
    frame, warnings = pseudonymise_table(
        typed(PEOPLE, [{"nhs_number": v} for v in values]), PEOPLE, TOKENISER, LA
    )
    valid = [v is not None and nhs_number_is_valid(v) for v in values]
    assert [t is not None for t in frame["nhs_number_token"]] == valid
    warned = set(warnings[ROW_NUMBER])
    assert warned == {
        n for n, v in enumerate(values, start=2) if v is not None and not valid[n - 2]
    }
