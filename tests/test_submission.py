"""`check_submission` end to end: bytes in, a pseudonymised and validated outcome out."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date
from statistics import mean

import polars as pl
import pytest
import xlsxwriter  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from pseudonymise.identifiers import nhs_check_digit, upn_check_letter
from pseudonymise.keys import TrialKey
from pseudonymise.tokens import Tokeniser
from schemas import rules
from schemas.contract import Dataset, Field, Kind, OnlyWhenBlank, Treatment
from schemas.datasets import DATASETS
from schemas.datasets.people import PEOPLE
from schemas.datasets.score15 import SCORE15, SCORE15_ITEMS, SUBSCALES
from schemas.outcome import ROW_NUMBER, SubmissionOutcome, TableOutcome
from schemas.submission import (
    RULES_COLUMN,
    TOTAL_SCORE,
    check_submission,
    clean_column_types,
    stored_columns,
    with_derived_columns,
)

TOKENISER = Tokeniser(TrialKey(b"submission-tests-key-0123456789abcdef"))
LA = "123"
TODAY = date(2026, 3, 1)
VALID_NHS = "9434765919"
VALID_UPN = upn_check_letter("801200005001") + "801200005001"
assert nhs_check_digit(VALID_NHS[:9]) == int(VALID_NHS[9])


def to_csv(rows: list[dict[str, str]]) -> bytes:
    header = list(dict.fromkeys(name for row in rows for name in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def check(rows: list[dict[str, str]], la_code: str = LA) -> SubmissionOutcome:
    return check_submission(to_csv(rows), la_code=la_code, tokeniser=TOKENISER, today=TODAY)


def only_table(outcome: SubmissionOutcome) -> TableOutcome:
    assert len(outcome.tables) == 1
    return outcome.tables[0]


def valid_cell(dataset: Dataset, field: Field, number: int) -> str:
    """A value that passes every rule of the field, distinct per row for identifiers."""
    blank_only = {r.target for r in dataset.rules if isinstance(r, OnlyWhenBlank)}
    if field.name in blank_only:
        return ""
    cells = {
        Kind.IDENTIFIER: f"ID-{field.name}-{number}",
        Kind.TEXT: "Team A",
        Kind.CODE: field.codes[0] if field.codes else "",
        Kind.CODES: field.codes[0] if field.codes else "",
        Kind.DATE: "2025-01-01" if field.not_in_future else "01/01/2025",
        Kind.FLAG: "Y",
        Kind.INTEGER: str(int(field.maximum or 1)),
        Kind.NUMBER: str(field.maximum or 1),
        Kind.NHS_NUMBER: VALID_NHS,
        Kind.UPN: VALID_UPN,
        Kind.POSTCODE: "SW1A 1AA",
    }
    return cells[field.kind]


def valid_row(dataset: Dataset, number: int = 1, **changes: str) -> dict[str, str]:
    row = {f.name: valid_cell(dataset, f, number) for f in dataset.fields}
    return row | changes


def person(number: int, **changes: str) -> dict[str, str]:
    base = {
        "person_id": f"P{number}",
        "family_id": "F1",
        "role": "CHILD",
        "first_name": "Alice",
        "date_of_birth": "2015-05-17",
        "sex": "F",
    }
    return base | changes


def issue_set(table: TableOutcome) -> set[tuple[int, str, str, str]]:
    return set(table.issues.iter_rows())


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_a_valid_row_of_every_dataset_loads_with_the_declared_columns(name: str) -> None:
    dataset = DATASETS[name]
    table = only_table(check([valid_row(dataset, 1), valid_row(dataset, 2)]))
    assert table.dataset == name
    assert table.issues.is_empty(), table.issues
    assert table.rows_loaded == 2 and table.accepted
    assert table.clean.schema == pl.Schema(clean_column_types(dataset))
    assert table.clean.columns == [ROW_NUMBER, *stored_columns(dataset)]
    assert table.rejected.columns == [*table.clean.columns, RULES_COLUMN]


def test_rows_with_errors_are_rejected_and_warnings_load() -> None:
    rows = [
        person(1, nhs_number="1234567890", postcode="NOT A POSTCODE"),
        person(2, role="ALIEN", sex=""),
        person(3, date_of_birth="31/02/2015"),
        person(4, person_id="X" * 37),
    ]
    table = only_table(check(rows))
    assert table.clean[ROW_NUMBER].to_list() == [2]
    assert table.clean["nhs_number_token"].to_list() == [None]
    assert table.clean["postcode_district"].to_list() == [None]
    assert table.clean["month_of_birth"].to_list() == [date(2015, 5, 1)]
    rejected = dict(zip(table.rejected[ROW_NUMBER], table.rejected[RULES_COLUMN], strict=True))
    assert rejected == {
        3: f"{rules.CODE_LIST};{rules.REQUIRED}",
        4: rules.DATE_FORMAT,
        5: rules.MAX_LENGTH,
    }
    assert issue_set(table) == {
        (2, "nhs_number", rules.NHS_NUMBER_CHECK, "warning"),
        (2, "postcode", rules.POSTCODE_FORMAT, "warning"),
        (3, "role", rules.CODE_LIST, "error"),
        (3, "sex", rules.REQUIRED, "error"),
        # Not also "required_unless_role_unborn": the format error is the one to fix.
        (4, "date_of_birth", rules.DATE_FORMAT, "error"),
        # Not also "required" for the ID nulled by the length check.
        (5, "person_id", rules.MAX_LENGTH, "error"),
    }
    assert table.issues.rows() == sorted(table.issues.rows(), key=lambda r: (r[0], r[1], r[2]))


def test_an_unknown_code_is_not_kept_in_the_rejected_row() -> None:
    table = only_table(check([person(1), person(2, sex="Mx Smith")]))
    assert table.rejected["sex"].to_list() == [None]
    assert table.clean["sex"].to_list() == ["F"]


def test_a_duplicated_key_rejects_every_row_carrying_it() -> None:
    table = only_table(check([person(1), person(2), person(1), person(1, person_id=" p1 ")]))
    # IDs are normalised before tokenising, so " p1 " is the same person as "P1".
    assert sorted(table.rejected[ROW_NUMBER]) == [2, 4, 5]
    assert set(table.rejected[RULES_COLUMN]) == {rules.DUPLICATE_KEY}


def test_an_la_code_that_differs_from_the_drop_refuses_the_table() -> None:
    table = only_table(check([person(1, la_code="123"), person(2, la_code="456")]))
    assert [(i.rule, i.severity) for i in table.file_issues] == [
        (rules.LA_CODE_MISMATCH, rules.Severity.ERROR)
    ]
    assert not table.accepted and table.rows_loaded == 0 and table.rows_received == 2
    assert table.clean.is_empty() and table.rejected.is_empty() and table.issues.is_empty()
    assert table.clean.schema == pl.Schema(clean_column_types(PEOPLE))


def to_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def to_xlsx(sheets: dict[str, list[dict[str, str]]]) -> bytes:
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    for name, rows in sheets.items():
        sheet = workbook.add_worksheet(name)
        header = list(dict.fromkeys(column for row in rows for column in row))
        sheet.write_row(0, 0, header)
        for number, row in enumerate(rows, start=1):
            sheet.write_row(number, 0, [row.get(column, "") for column in header])
    workbook.close()
    return buffer.getvalue()


def two_datasets_one_naming_another_la(container: str) -> bytes:
    good = [person(1, la_code=LA), person(2)]
    other = [valid_row(SCORE15, 1, la_code=LA), valid_row(SCORE15, 2, la_code="456")]
    if container == "zip":
        return to_zip({"people.csv": to_csv(good), "score15.csv": to_csv(other)})
    return to_xlsx({"people": good, "score15": other})


@pytest.mark.parametrize("container", ["zip", "xlsx"])
def test_an_la_code_differing_in_one_dataset_rejects_the_whole_file(container: str) -> None:
    content = two_datasets_one_naming_another_la(container)
    outcome = check_submission(content, la_code=LA, tokeniser=TOKENISER, today=TODAY)
    tables = {t.dataset: t for t in outcome.tables}
    assert set(tables) == {PEOPLE.name, SCORE15.name}
    assert not outcome.accepted
    for table in tables.values():
        assert [(i.rule, i.severity) for i in table.file_issues] == [
            (rules.LA_CODE_MISMATCH, rules.Severity.ERROR)
        ]
        assert not table.accepted and table.rows_loaded == 0 and table.rows_received == 2
        assert table.clean.is_empty() and table.issues.is_empty()
    assert (
        tables[PEOPLE.name]
        .file_issues[0]
        .detail.endswith(SCORE15.name + " (" + tables[SCORE15.name].source + ")")
    )


def test_a_matching_la_code_is_accepted_and_never_stored() -> None:
    table = only_table(check([person(1, la_code=" 123 "), person(2, la_code="")]))
    assert table.accepted and table.rows_loaded == 2
    assert "la_code" not in table.clean.columns and "la_code" not in table.rejected.columns


def test_a_return_with_no_valid_row_is_refused_so_earlier_data_stays() -> None:
    outcome = check([person(1, sex="X"), person(2, role="")])
    table = only_table(outcome)
    assert [i.rule for i in table.file_issues] == [rules.NO_VALID_ROWS]
    assert not table.accepted and not outcome.accepted and table.rows_rejected == 2


def test_the_outcome_records_the_key_and_the_la() -> None:
    outcome = check([person(1)])
    assert outcome.key_id == TOKENISER.key_id and outcome.la_code == LA
    assert outcome.accepted_in_full


# --- SCORE-15 ------------------------------------------------------------------------------


def score_row(number: int, answers: dict[int, str]) -> dict[str, str]:
    row = valid_row(SCORE15, number)
    return row | {f"item_{i:02d}": answers.get(i, "") for i in range(1, 16)}


def test_score15_subscales_and_total() -> None:
    full = {1: "1", 3: "2", 6: "3", 10: "4", 15: "5"}  # strengths: mean 3
    full |= dict.fromkeys((5, 7, 9, 11, 14), "1")  # overwhelmed: reversed to 5
    full |= {4: "2", 8: "2", 12: "2", 13: "2"}  # disrupted, item 2 blank: reversed 4
    two_blanks = full | {4: ""}
    out_of_range = full | {1: "7"}
    table = only_table(
        check([score_row(1, full), score_row(2, two_blanks), score_row(3, out_of_range)])
    )
    scores = table.clean.select(*SUBSCALES, TOTAL_SCORE).rows()
    assert scores == [(3.0, 5.0, 4.0, 4.0), (3.0, 5.0, None, None)]
    # The 7 counts as blank for scoring (and rejects the row).
    rejected = table.rejected.select(*SUBSCALES, TOTAL_SCORE, RULES_COLUMN).rows()
    assert rejected == [(3.5, 5.0, 4.0, 12.5 / 3, rules.OUT_OF_RANGE)]


_answers = st.lists(st.one_of(st.none(), st.integers(1, 5)), min_size=15, max_size=15)


@settings(max_examples=100, deadline=None)
@given(st.lists(_answers, min_size=1, max_size=8))
def test_score15_scores_agree_with_a_plain_reading_of_the_spec(
    rows: list[list[int | None]],
) -> None:
    frame = pl.DataFrame(
        [dict(zip(SCORE15_ITEMS, answers, strict=True)) for answers in rows],
        schema=dict.fromkeys(SCORE15_ITEMS, pl.Int64),
    )
    scored = with_derived_columns(frame, SCORE15)
    for answers, got in zip(rows, scored.iter_rows(named=True), strict=True):
        subscales: list[float | None] = []
        for name, (numbers, reverse) in SUBSCALES.items():
            given_ = [answers[n - 1] for n in numbers if answers[n - 1] is not None]
            marks = [6 - a if reverse else a for a in given_ if a is not None]
            expected = mean(marks) if len(marks) >= len(numbers) - 1 else None
            subscales.append(expected)
            assert got[name] == pytest.approx(expected)
        total = None if None in subscales else mean(s for s in subscales if s is not None)
        assert got[TOTAL_SCORE] == pytest.approx(total)


# --- privacy -------------------------------------------------------------------------------

CANARY = "QZCANARYQZ"


def canary_row(dataset: Dataset, number: int) -> dict[str, str]:
    """Canaries in every field that is not stored as it comes: identifiers, dropped text,
    NHS numbers, UPNs, postcodes, and (as unknown codes, bad dates, bad numbers) the rest."""
    row = valid_row(dataset, number)
    for field in dataset.fields:
        kept_text = field.kind is Kind.TEXT and field.treatment is Treatment.KEEP
        if not kept_text:
            row[field.name] = f"{CANARY}{number}{field.name}"[:36]
    return row


def everything_in(outcome: SubmissionOutcome) -> str:
    parts = [repr(outcome), repr(outcome.file_issues)]
    for table in outcome.tables:
        for frame in (table.clean, table.rejected, table.issues):
            parts.append(frame.write_csv())
            parts.append(repr(frame))
        parts.append(repr(table.file_issues))
    return "\n".join(parts)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_no_canary_reaches_the_outcome(name: str) -> None:
    dataset = DATASETS[name]
    rows = [canary_row(dataset, 1), canary_row(dataset, 2), canary_row(dataset, 1)]
    rows.append(valid_row(dataset, 9) | {"notes": CANARY, "first_name": CANARY})
    outcome = check([{k: v for k, v in r.items() if k in rows[0]} for r in rows])
    table = only_table(outcome)
    assert table.rows_rejected == 3 and table.rows_loaded == 1
    assert CANARY.lower() not in everything_in(outcome).lower()


def test_no_canary_in_a_refused_la_code() -> None:
    outcome = check([person(1, la_code=CANARY, first_name=CANARY)])
    assert CANARY.lower() not in everything_in(outcome).lower()


def keyworker(number: int, **changes: str) -> dict[str, str]:
    return valid_row(DATASETS["keyworkers"], number) | changes


def test_a_refused_value_is_null_in_the_rejected_row_and_its_rule_kept() -> None:
    rows = [
        keyworker(1),
        keyworker(2, team="T" * 101),  # a free-text cell over its length
        keyworker(3, fte="7700900123"),  # a number out of range: a phone number, say
        keyworker(4, start_date="01/01/2025", end_date="01/12/2024"),  # on_or_after
    ]
    table = only_table(check(rows))
    rejected = {row[ROW_NUMBER]: row for row in table.rejected.iter_rows(named=True)}
    assert rejected[3]["team"] is None and rejected[3][RULES_COLUMN] == rules.MAX_LENGTH
    assert rejected[4]["fte"] is None and rejected[4][RULES_COLUMN] == rules.OUT_OF_RANGE
    assert rejected[5]["end_date"] is None
    assert rejected[5][RULES_COLUMN] == "on_or_after_start_date"
    # Cells no rule refused stay; tokens stay (a keyed HMAC, which withdrawals delete by).
    assert rejected[5]["start_date"] == date(2025, 1, 1)
    assert all(row["keyworker_token"] for row in rejected.values())
    assert table.clean["team"].to_list() == ["Team A"]


def test_free_text_is_never_kept_on_a_rejected_row() -> None:
    # A row whose columns shifted: the team cell holds a name, and another cell breaks a rule.
    table = only_table(check([keyworker(1), keyworker(2, team="Alice Smith", role="Smith")]))
    assert table.rejected["team"].to_list() == [None]
    assert table.rejected[RULES_COLUMN].to_list() == [rules.CODE_LIST]


def test_coarsened_values_stay_on_a_rejected_row() -> None:
    # The month of birth is what clean rows keep; the rule says why the row was refused.
    table = only_table(check([person(1), person(2, date_of_birth="2001-05-17")]))
    assert table.rejected["month_of_birth"].to_list() == [date(2001, 5, 1)]
    assert table.rejected[RULES_COLUMN].to_list() == ["child_under_18_in_trial_window"]
