"""The LA report: what it says, and that it names rows, columns and rules only."""

import csv
import io
from datetime import UTC, datetime

import polars as pl

from schemas.cross_dataset_rules import CrossCheckFinding
from schemas.datasets import DATASETS
from schemas.outcome import ISSUE_SCHEMA, FileIssue, SubmissionOutcome, TableOutcome
from schemas.report import render_issues_csv, render_report, report_file_name, rule_text
from schemas.rules import CODE_LIST, LA_CODE_MISMATCH, NHS_NUMBER_CHECK, UNKNOWN_COLUMN, Severity


def _table(
    issues: list[tuple[int, str, str, str]], *, file_issues: list[FileIssue] | None = None
) -> TableOutcome:
    return TableOutcome(
        dataset="people",
        source="sheet 2",
        rows_received=10,
        clean=pl.DataFrame({"row_number": list(range(2, 10))}),
        rejected=pl.DataFrame({"row_number": [10, 11]}),
        issues=pl.DataFrame(issues, schema=ISSUE_SCHEMA, orient="row"),
        file_issues=file_issues or [],
    )


def _outcome(table: TableOutcome) -> SubmissionOutcome:
    return SubmissionOutcome(
        la_code="901",
        key_id="k1-0123456789abcdef",
        tables=[table],
        file_issues=[FileIssue(UNKNOWN_COLUMN, Severity.WARNING, where="column F")],
    )


def test_report_names_rows_columns_and_rules() -> None:
    outcome = _outcome(
        _table([(10, "role", CODE_LIST, "error"), (11, "nhs_number", NHS_NUMBER_CHECK, "warning")])
    )
    text = render_report(
        outcome,
        received_at=datetime(2026, 11, 27, 9, 30, tzinfo=UTC),
        sha256="ab" * 32,
        size_bytes=1234,
    )
    assert "Result:    ACCEPTED" in text
    assert "people (sheet 2): accepted; 10 rows received, 8 loaded, 2 rejected, 1 warnings" in text
    assert "row 10, column role: code_list [error]: is not one of the allowed codes" in text
    assert "row 11, column nhs_number: nhs_number_check [warning]" in text
    assert "[warning] column F: unknown_column" in text


def test_report_is_cut_at_the_row_limit_and_says_so() -> None:
    issues = [(row, "role", CODE_LIST, "error") for row in range(2, 30)]
    text = render_report(
        _outcome(_table(issues)), received_at=None, sha256="0" * 64, size_bytes=1, row_limit=5
    )
    assert text.count(": code_list [error]: ") == 5
    assert "23 more lines" in text
    assert "28 × role: code_list [error]" in text


def test_rejected_table_is_reported_as_rejected() -> None:
    table = _table([], file_issues=[FileIssue(LA_CODE_MISMATCH, Severity.ERROR)])
    outcome = SubmissionOutcome(la_code="901", key_id="k", tables=[table])
    text = render_report(outcome, received_at=None, sha256="0" * 64, size_bytes=1)
    assert "Result:    REJECTED" in text
    assert "people (sheet 2): REJECTED; 10 rows received, 0 loaded" in text
    assert "la_code_mismatch: the file's LA code column differs" in text


def test_a_held_return_is_reported_as_held_for_review_with_its_checks() -> None:
    outcome = _outcome(_table([]))
    held = {"people": ["row_count_not_halved: at least half the current rows"]}
    text = render_report(
        outcome, received_at=None, sha256="0" * 64, size_bytes=1, status="held", held_checks=held
    )
    assert (
        "Result:    HELD FOR REVIEW: the return is kept but does not replace your earlier data "
        "until the trial team has looked at it"
    ) in text
    assert "people (sheet 2): HELD FOR REVIEW; 10 rows received, 8 kept (not yet loaded)" in text
    assert "  people: row_count_not_halved: at least half the current rows" in text
    assert "ACCEPTED" not in text


def test_csv_report_lists_every_issue() -> None:
    issues = [(row, "role", CODE_LIST, "error") for row in range(2, 700)]
    rows = list(csv.reader(io.StringIO(render_issues_csv(_outcome(_table(issues))))))
    assert rows[0] == ["dataset", "source", "row", "column", "rule", "severity", "explanation"]
    assert len(rows) == 1 + 1 + len(issues)  # header, the file-level warning, every row issue
    assert rows[2][:6] == ["people", "sheet 2", "2", "role", "code_list", "error"]


def test_cross_field_rules_are_explained_in_words() -> None:
    rule = DATASETS["episodes"].rules[0]
    assert rule_text(rule.rule, "episodes") == f"breaks the rule: {rule.describe()}"


def test_report_file_name_carries_no_file_name() -> None:
    name = report_file_name(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "901-abc")
    assert name == "20260102T030405.000006Z_901-abc.txt"


def test_a_copy_received_in_the_same_second_gets_a_report_of_its_own() -> None:
    first = report_file_name(datetime(2026, 1, 2, 3, 4, 5, 100, tzinfo=UTC), "901-abc")
    copy = report_file_name(datetime(2026, 1, 2, 3, 4, 5, 900, tzinfo=UTC), "901-abc")
    later = report_file_name(datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC), "901-abc")
    assert first != copy
    assert sorted([later, copy, first]) == [first, copy, later]  # names sort as received


def test_cross_dataset_warnings_are_reported_with_counts_and_rows() -> None:
    finding = CrossCheckFinding(
        dataset="episodes",
        column="keyworker_id",
        rule="orphan_keyworker_id",
        description="`episodes.keyworker_id` matches a `keyworker_id` in `keyworkers`",
        rows=25,
        row_numbers=(2, 3, 9),
        target_received=False,
    )
    text = render_report(
        _outcome(_table([])),
        received_at=None,
        sha256="0" * 64,
        size_bytes=1,
        cross_findings=[finding],
    )
    assert "Checks across your datasets (warnings; these rows are loaded):" in text
    assert (
        "episodes, column keyworker_id: 25 rows break orphan_keyworker_id: "
        "`episodes.keyworker_id` matches a `keyworker_id` in `keyworkers` "
        "(that dataset has not been received yet); rows 2, 3, 9, …"
    ) in text
