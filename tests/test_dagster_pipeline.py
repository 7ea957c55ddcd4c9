"""`ingest.processing` without Dagster: the blocking checks, the counts the UI shows, receipts."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_dagster_definitions import episodes_csv, people_csv

from ingest.processing import (
    Check,
    CheckVerdict,
    Received,
    blocking_checks,
    rejected_by_rule,
)
from ingest.warehouse import PreviousReturn, newest_service_date
from pseudonymise.keys import new_key_text, parse_key_text
from pseudonymise.tokens import Tokeniser
from schemas.outcome import TableOutcome
from schemas.submission import check_submission

TOKENISER = Tokeniser(parse_key_text(new_key_text()))
RECEIVED = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)


def table(content: bytes) -> TableOutcome:
    outcome = check_submission(content, la_code="201", tokeniser=TOKENISER, today=RECEIVED.date())
    [only] = outcome.tables
    return only


def previous(rows: int, newest: date | None = None) -> PreviousReturn:
    return PreviousReturn(
        submission_id="201-" + "0" * 24,
        received_at=RECEIVED,
        rows_loaded=rows,
        newest_record_date=newest,
    )


def verdicts(outcome: TableOutcome, earlier: PreviousReturn | None) -> dict[Check, bool]:
    return {v.check: v.passed for v in checks_of(outcome, earlier)}


def checks_of(outcome: TableOutcome, earlier: PreviousReturn | None) -> tuple[CheckVerdict, ...]:
    """The blocking checks of an accepted whole table, as `_load_dataset` asks for them."""
    return blocking_checks(outcome.clean.height, newest_service_date(outcome), earlier)


PEOPLE_6 = table(people_csv(6))


def test_a_first_return_passes_every_check() -> None:
    assert verdicts(PEOPLE_6, None) == dict.fromkeys(Check, True)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=40))
def test_the_row_count_may_fall_to_half_but_no_further(previous_rows: int) -> None:
    passed = verdicts(PEOPLE_6, previous(previous_rows))[Check.ROW_COUNT_NOT_HALVED]

    assert passed == (previous_rows <= 2 * 6)


def test_a_return_whose_newest_service_date_is_older_is_flagged() -> None:
    episodes = table(episodes_csv(5, newest=date(2025, 3, 1)))

    older = verdicts(episodes, previous(5, newest=date(2025, 3, 2)))
    same = verdicts(episodes, previous(5, newest=date(2025, 3, 1)))

    assert newest_service_date(episodes) == date(2025, 3, 1)
    assert older[Check.NOT_OLDER_THAN_PREVIOUS] is False
    assert same[Check.NOT_OLDER_THAN_PREVIOUS] is True


def test_a_dataset_without_service_dates_is_never_flagged_as_older() -> None:
    assert newest_service_date(PEOPLE_6) is None  # birth months are not service dates
    assert verdicts(PEOPLE_6, previous(6, newest=date(2025, 5, 1)))[Check.NOT_OLDER_THAN_PREVIOUS]


def test_the_check_descriptions_and_metadata_hold_counts_only() -> None:
    episodes = table(episodes_csv(3, newest=date(2025, 3, 1)))

    results = checks_of(episodes, previous(8, date(2025, 4, 1)))

    assert [v.description for v in results] == [
        "3 valid rows",
        "3 valid rows; the current return has 8",
        "newest service date is older than the current return's",
    ]
    written = repr([(v.description, v.metadata) for v in results])
    assert "2025" not in written  # neither service date reaches the event log


def test_rejected_rows_are_counted_by_rule_and_warnings_are_not() -> None:
    content = people_csv(3) + (
        b"PER09001,FAM09001,CHILD,not a date,F,A\n"
        b"PER09002,FAM09002,ALIEN,not a date,F,B\n"
        b"PER09003,FAM09003,CHILD,2015-01-01,Q,C\n"
    )
    header_with_nhs = content.replace(b"first_name\n", b"first_name,nhs_number\n", 1)
    rows = header_with_nhs.split(b"\n")
    rows[1] += b",9434765918"  # a valid NHS number
    rows[2] += b",1234567890"  # fails its check: a warning, the row loads
    outcome = table(b"\n".join(rows))

    assert rejected_by_rule(outcome) == {"code_list": 2, "date_format": 2}
    assert outcome.rows_rejected == 3
    assert outcome.clean.height == 3


def test_a_receipt_is_the_content_at_a_time() -> None:
    first = Received("201", b"x", RECEIVED, "201-" + "a" * 24, "f" * 64)
    again = Received("201", b"x", RECEIVED, "201-" + "a" * 24, "f" * 64)
    later = Received("201", b"x", RECEIVED.replace(hour=10), "201-" + "a" * 24, "f" * 64)

    assert first.receipt_id == again.receipt_id
    assert first.receipt_id != later.receipt_id
    # The bytes never reach a log line (the keyed `content_hmac` may).
    assert "content=" not in repr(first)
    assert "b'x'" not in repr(first)


@pytest.mark.parametrize("dataset_rows", [1, 2])
def test_has_valid_rows_passes_with_any_valid_row(dataset_rows: int) -> None:
    assert verdicts(table(people_csv(dataset_rows)), None)[Check.HAS_VALID_ROWS]
