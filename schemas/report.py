"""The plain report an LA gets for every file: the same text from the checker and the pipeline.

It names datasets, row numbers, columns and rules, and counts; it never repeats a value from the
file, and it does not repeat the file's name either (an LA-chosen name may itself hold personal
data): the file is identified by its size, SHA-256 and received time.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import polars as pl

from schemas.contract import Dataset
from schemas.cross_dataset_rules import CrossCheckFinding
from schemas.datasets import DATASETS
from schemas.outcome import ROW_NUMBER, FileIssue, SubmissionOutcome, TableOutcome
from schemas.rules import RULE_TEXT, Severity

# The text report lists at most this many row-level lines; the CSV form lists them all.
TEXT_REPORT_ROW_LIMIT = 500

STATUS_WORDS = {
    "accepted": "ACCEPTED",
    "rejected": "REJECTED",
    "duplicate": "DUPLICATE: identical to a file already received; nothing changed",
    "held": (
        "HELD FOR REVIEW: the return is kept but does not replace your earlier data until the "
        "trial team has looked at it"
    ),
}


def rule_text(rule: str, dataset: str | None = None) -> str:
    """Plain words for a rule: the registry's text, or a cross-field rule's own description."""
    if rule in RULE_TEXT:
        return RULE_TEXT[rule]
    declared = _cross_field_rule_text(DATASETS.get(dataset or ""), rule)
    return declared or rule.replace("_", " ")


def _cross_field_rule_text(dataset: Dataset | None, rule: str) -> str | None:
    candidates = [dataset] if dataset else list(DATASETS.values())
    for candidate in candidates:
        for declared in candidate.rules:
            if declared.rule == rule:
                return f"breaks the rule: {declared.describe()}"
    return None


def outcome_status(outcome: SubmissionOutcome) -> str:
    return "accepted" if outcome.accepted else "rejected"


def report_file_name(received_at: datetime, submission_id: str) -> str:
    """`20261127T093000.123456Z_<submission id>.txt`: sortable, and free of the LA's file name.

    To the microsecond: a byte-identical copy dropped again gets the same submission id, and
    its duplicate report must not replace the first file's report when both are received
    within the same second (an LA's runs take turns, so they never share a microsecond).
    """
    return f"{received_at.strftime('%Y%m%dT%H%M%S.%fZ')}_{submission_id}.txt"


def render_report(
    outcome: SubmissionOutcome,
    *,
    received_at: datetime | None,
    sha256: str | None,
    size_bytes: int,
    status: str | None = None,
    held_checks: Mapping[str, Sequence[str]] | None = None,
    cross_findings: Sequence[CrossCheckFinding] = (),
    row_limit: int = TEXT_REPORT_ROW_LIMIT,
) -> str:
    """The report's text. `sha256`: the file's, for the pre-flight checker only, which runs at
    the LA on its own file (a bare hash of a small file is its content). `held_checks` (with
    status "held"): per dataset held back, the blocking checks it failed, each as
    "check_name: what it requires", in words free of file values.
    """
    held_checks = held_checks or {}
    status = status or outcome_status(outcome)
    lines = [
        "Supporting Families systemic practice trial: data return report",
        "",
        f"LA code:   {outcome.la_code}",
        *([f"Received:  {received_at.strftime('%Y-%m-%d %H:%M:%S UTC')}"] if received_at else []),
        f"File:      {size_bytes:,} bytes" + (f", SHA-256 {sha256}" if sha256 else ""),
        f"Result:    {STATUS_WORDS.get(status, status.upper())}",
    ]
    if status != "duplicate":
        lines += _dataset_summary(outcome.tables, held=set(held_checks))
        lines += _held_lines(held_checks)
        lines += _file_issue_lines(outcome)
        lines += _row_issue_lines(outcome.tables, row_limit)
        lines += _cross_finding_lines(cross_findings)
    lines += [
        "",
        "Row numbers are as your spreadsheet shows them (the header is row 1).",
        "This report never repeats a value from your file.",
    ]
    return "\n".join(lines) + "\n"


def _cross_finding_lines(findings: Sequence[CrossCheckFinding]) -> list[str]:
    """Warnings across the LA's current datasets: no row is rejected for them."""
    if not findings:
        return []
    lines = ["", "Checks across your datasets (warnings; these rows are loaded):"]
    for finding in findings:
        rows = ", ".join(str(n) for n in finding.row_numbers)
        more = ", …" if finding.rows > len(finding.row_numbers) else ""
        pending = "" if finding.target_received else " (that dataset has not been received yet)"
        lines.append(
            f"  {finding.dataset}, column {finding.column}: {finding.rows:,} rows break "
            f"{finding.rule}: {finding.description}{pending}; rows {rows}{more}"
        )
    return lines


def _dataset_summary(tables: list[TableOutcome], *, held: set[str]) -> list[str]:
    if not tables:
        return ["", "No dataset was recognised in the file."]
    lines = ["", "Datasets in the file:"]
    for table in tables:
        where = f" ({table.source})" if table.source else ""
        verdict = "accepted" if table.accepted else "REJECTED"
        loaded = "loaded"
        if table.accepted and table.dataset in held:
            verdict, loaded = "HELD FOR REVIEW", "kept (not yet loaded)"
        warnings = _count(table.issues, Severity.WARNING)
        lines.append(
            f"  {table.dataset}{where}: {verdict}; {table.rows_received:,} rows received, "
            f"{table.rows_loaded:,} {loaded}, {table.rows_rejected:,} rejected, "
            f"{warnings:,} warnings"
        )
    return lines


def _held_lines(held_checks: Mapping[str, Sequence[str]]) -> list[str]:
    if not held_checks:
        return []
    lines = ["", "Held for review by these checks, which the return did not pass:"]
    for dataset, checks in held_checks.items():
        lines += [f"  {dataset}: {check}" for check in checks]
    return lines


def _count(issues: pl.DataFrame, severity: Severity) -> int:
    return issues.filter(pl.col("severity") == severity.value).height


def _file_issue_lines(outcome: SubmissionOutcome) -> list[str]:
    scoped: list[tuple[str, FileIssue]] = [("", issue) for issue in outcome.file_issues]
    for table in outcome.tables:
        scoped += [(table.dataset, issue) for issue in table.file_issues]
    if not scoped:
        return []
    lines = ["", "Problems with the file:"]
    for dataset, issue in scoped:
        lines.append("  " + _file_issue_line(dataset, issue))
    return lines


def _file_issue_line(dataset: str, issue: FileIssue) -> str:
    parts = [f"[{issue.severity.value}]"]
    if dataset:
        parts.append(f"{dataset}:")
    if issue.where:
        parts.append(f"{issue.where}:")
    parts.append(f"{issue.rule}: {rule_text(issue.rule, dataset)}")
    line = " ".join(parts)
    return f"{line}. {issue.detail}" if issue.detail else line


def _row_issue_lines(tables: list[TableOutcome], row_limit: int) -> list[str]:
    total = sum(t.issues.height for t in tables)
    if total == 0:
        return []
    lines = ["", "Rejected rows (errors) and warnings, by dataset:"]
    shown = 0
    for table in tables:
        if table.issues.height == 0:
            continue
        lines.append(f"  {table.dataset}" + (f" ({table.source})" if table.source else ""))
        lines += _rule_counts(table)
        for row, column, rule, severity in table.issues.head(max(row_limit - shown, 0)).iter_rows():
            lines.append(
                f"    row {row}, column {column}: {rule} [{severity}]: "
                f"{rule_text(rule, table.dataset)}"
            )
            shown += 1
    if shown < total:
        lines.append(
            f"  … {total - shown:,} more lines; the CSV report beside this one lists them all."
        )
    return lines


def _rule_counts(table: TableOutcome) -> list[str]:
    counts = (
        table.issues.group_by("column", "rule", "severity")
        .len()
        .sort("len", "column", "rule", descending=[True, False, False])
    )
    return [
        f"    {n:,} × {column}: {rule} [{severity}]"
        for column, rule, severity, n in counts.iter_rows()
    ]


ISSUES_CSV_HEADER = ("dataset", "source", "row", "column", "rule", "severity", "explanation")


def render_issues_csv(outcome: SubmissionOutcome) -> str:
    """Every file-level and row-level issue, one per line, for an LA to open in Excel."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(ISSUES_CSV_HEADER)
    writer.writerows(_issue_csv_rows(outcome))
    return buffer.getvalue()


def _issue_csv_rows(outcome: SubmissionOutcome) -> Iterable[tuple[object, ...]]:
    for issue in outcome.file_issues:
        yield ("", issue.where, "", "", issue.rule, issue.severity.value, _explain(issue, ""))
    for table in outcome.tables:
        for issue in table.file_issues:
            yield (
                table.dataset, table.source, "", "", issue.rule, issue.severity.value,
                _explain(issue, table.dataset),
            )  # fmt: skip
        for row, column, rule, severity in table.issues.select(
            ROW_NUMBER, "column", "rule", "severity"
        ).iter_rows():
            yield (
                table.dataset, table.source, row, column, rule, severity,
                rule_text(rule, table.dataset),
            )  # fmt: skip


def _explain(issue: FileIssue, dataset: str) -> str:
    text = rule_text(issue.rule, dataset)
    return f"{text}. {issue.detail}" if issue.detail else text
