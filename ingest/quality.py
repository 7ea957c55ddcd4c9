# ruff: noqa: S608 -- table and column names in the SQL come from the declarations, never a file
"""Data-quality report for the evaluators: great-expectations suites over the warehouse.

One expectation suite per dataset, built from the contract's declarations (`schemas/datasets`),
is validated against `clean.<dataset>` (already pseudonymised), and each failed expectation again
against each LA's rows, to say where it fails. The
report adds the cross-dataset findings (`ingest.warehouse`) and the rows each LA's current
returns lost to a rule (`ops.issues`).

Only counts and percentages leave this module. great-expectations' results can carry failing
values (`partial_unexpected_list` and friends, here tokens or codes); they are asked for with
no examples and read through an allow-list of count keys, so no value is ever kept.

great-expectations is imported inside `quality_report` (it takes seconds to import) with its
usage analytics and progress bars switched off.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ingest.settings import Settings
from ingest.warehouse import Warehouse, cross_check_findings
from schemas.contract import LA_CODE_COLUMN, Dataset, Field, Kind, Treatment
from schemas.cross_dataset_rules import CrossCheckFinding
from schemas.datasets import DATASETS

if TYPE_CHECKING:
    import pandas as pd

QUALITY_FILE = "quality_report.md"
TOKEN_PATTERN = "^[0-9a-f]{32}$"  # noqa: S105 (a pattern, not a secret)
KEY_ID_COLUMN = "key_id"
# The only keys copied out of a great-expectations result: counts and percentages.
_COUNT_KEYS = ("element_count", "unexpected_count", "unexpected_percent")
_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation on one LA's rows of one dataset: success and counts, never values."""

    expectation: str  # great-expectations' name, e.g. expect_column_values_to_not_be_null
    column: str  # the stored column(s), ','-joined for compound expectations
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None


@dataclass(frozen=True)
class DatasetQuality:
    """A dataset's suite validated against its clean rows (of every LA, or of `la_code`).

    `by_la` repeats each failed expectation on each LA's rows, to say which LAs fail it.
    """

    dataset: str
    la_code: str | None  # None: the rows of every LA
    rows: int
    outcomes: tuple[ExpectationOutcome, ...]
    by_la: tuple[DatasetQuality, ...] = ()

    @property
    def evaluated(self) -> int:
        return len(self.outcomes)

    @property
    def failed(self) -> int:
        return sum(not o.success for o in self.outcomes)


@dataclass(frozen=True)
class LAFinding:
    la_code: str
    finding: CrossCheckFinding


@dataclass(frozen=True)
class RejectedRows:
    """Rows of an LA's current return that a rule kept out of the clean table (or flagged)."""

    la_code: str
    dataset: str
    rule: str
    severity: str
    rows: int


@dataclass(frozen=True)
class QualityReport:
    generated_at: datetime
    la_codes: tuple[str, ...]
    validations: tuple[DatasetQuality, ...]
    cross_checks: tuple[LAFinding, ...]
    rejected: tuple[RejectedRows, ...]
    seconds: float = 0.0
    allocation_loaded: bool = True

    @property
    def evaluated(self) -> int:
        return sum(v.evaluated for v in self.validations)

    @property
    def failed(self) -> int:
        return sum(v.failed for v in self.validations)

    def per_dataset(self) -> dict[str, dict[str, int]]:
        """Expectations evaluated and failed, and rows validated, per dataset (all LAs)."""
        totals: dict[str, dict[str, int]] = {}
        for v in self.validations:
            entry = totals.setdefault(v.dataset, {"rows": 0, "evaluated": 0, "failed": 0})
            entry["rows"] += v.rows
            entry["evaluated"] += v.evaluated
            entry["failed"] += v.failed
        return totals


# --- the suites, from the contract ----------------------------------------------------------


@dataclass(frozen=True)
class ExpectationSpec:
    """A great-expectations expectation by class name and keyword arguments (GE-free)."""

    name: str  # e.g. "ExpectColumnValuesToNotBeNull"
    kwargs: dict[str, Any] = field(default_factory=dict)


def suite_specs(dataset: Dataset, allocation_codes: Sequence[str]) -> list[ExpectationSpec]:
    """The expectations a dataset's clean rows must meet, read off its declaration."""
    specs = [
        ExpectationSpec("ExpectColumnValuesToBeInSet", _in_set(LA_CODE_COLUMN, allocation_codes)),
        ExpectationSpec(
            "ExpectColumnUniqueValueCountToBeBetween",
            {"column": KEY_ID_COLUMN, "min_value": 1, "max_value": 1},
        ),
        ExpectationSpec(
            "ExpectCompoundColumnsToBeUnique",
            {"column_list": [LA_CODE_COLUMN, *(dataset.field(k).stored_name for k in dataset.key)]},
        ),
    ]
    for f in dataset.stored_fields:
        specs.extend(_field_specs(f))
    return specs


def _field_specs(f: Field) -> Iterator[ExpectationSpec]:
    column = f.stored_name
    if f.required:
        yield ExpectationSpec("ExpectColumnValuesToNotBeNull", {"column": column})
    if f.treatment is Treatment.TOKEN:
        yield ExpectationSpec(
            "ExpectColumnValuesToMatchRegex", {"column": column, "regex": TOKEN_PATTERN}
        )
    if f.kind is Kind.CODE and f.codes:
        yield ExpectationSpec("ExpectColumnValuesToBeInSet", _in_set(column, f.codes))
    if f.kind in (Kind.INTEGER, Kind.NUMBER) and (f.minimum is not None or f.maximum is not None):
        yield ExpectationSpec(
            "ExpectColumnValuesToBeBetween",
            {
                "column": column,
                "min_value": f.minimum,
                "max_value": f.maximum,
                "strict_min": f.minimum_exclusive,
            },
        )


def _spec_key(spec: ExpectationSpec) -> tuple[str, str]:
    """(great-expectations' snake_case name, column) as an `ExpectationOutcome` names them."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", spec.name).lower()
    columns = spec.kwargs.get("column") or ",".join(spec.kwargs.get("column_list") or ())
    return snake, str(columns)


def _in_set(column: str, values: Sequence[str]) -> dict[str, Any]:
    return {"column": column, "value_set": sorted(set(values))}


# --- the report -----------------------------------------------------------------------------


def quality_report(
    engine_or_warehouse: sa.Engine | Warehouse, *, la_code: str | None = None
) -> QualityReport:
    """Validate each dataset's clean rows: every LA's at once, with each failure broken down
    per LA; or only `la_code`'s rows. Adds cross-dataset findings and rule rejections."""
    started = time.perf_counter()
    engine = (
        engine_or_warehouse.engine
        if isinstance(engine_or_warehouse, Warehouse)
        else engine_or_warehouse
    )
    with engine.connect() as conn:
        allocation = _allocation_codes(conn)
        las = (la_code,) if la_code is not None else _las_with_rows(conn)
        frames = {d: _clean_frame(conn, d, la_code) for d in DATASETS}
        rejected = _rejected_rows(conn, las)
    validations = _validate(frames, allocation, la_code)
    findings = tuple(
        LAFinding(la, f) for la in las for f in cross_check_findings(engine_or_warehouse, la)
    )
    return QualityReport(
        generated_at=datetime.now(UTC),
        la_codes=las,
        validations=validations,
        cross_checks=findings,
        rejected=rejected,
        seconds=time.perf_counter() - started,
        allocation_loaded=bool(allocation),
    )


def _allocation_codes(conn: sa.Connection) -> list[str]:
    return [str(c) for (c,) in conn.execute(sa.text("SELECT la_code FROM trial.allocation"))]


def _las_with_rows(conn: sa.Connection) -> tuple[str, ...]:
    union = " UNION ".join(f"SELECT DISTINCT la_code FROM clean.{d}" for d in DATASETS)
    return tuple(sorted(str(c) for (c,) in conn.execute(sa.text(union))))


def _clean_frame(conn: sa.Connection, dataset: str, la_code: str | None) -> pd.DataFrame:
    import pandas as pd

    query = f"SELECT * FROM clean.{dataset}"
    if la_code is None:
        result = conn.execute(sa.text(query))
    else:
        result = conn.execute(sa.text(query + " WHERE la_code = :la"), {"la": la_code})
    return pd.DataFrame.from_records(result.fetchall(), columns=list(result.keys()))


def _rejected_rows(conn: sa.Connection, las: Sequence[str]) -> tuple[RejectedRows, ...]:
    """Row-level issues of each LA's current returns, as distinct rows per rule."""
    if not las:
        return ()
    query = sa.text(
        "SELECT i.la_code, i.dataset, i.rule, i.severity, count(DISTINCT i.row_number) "
        "FROM ops.issues i JOIN ops.current_returns c ON c.la_code = i.la_code "
        "AND c.dataset = i.dataset AND c.submission_id = i.submission_id "
        "WHERE i.row_number IS NOT NULL AND i.la_code IN :las "
        "GROUP BY i.la_code, i.dataset, i.rule, i.severity "
        "ORDER BY i.dataset, i.la_code, i.rule, i.severity"
    ).bindparams(sa.bindparam("las", expanding=True))
    return tuple(
        RejectedRows(la_code=la, dataset=d, rule=rule, severity=severity, rows=int(n))
        for la, d, rule, severity, n in conn.execute(query, {"las": list(las)})
    )


def _validate(
    frames: dict[str, pd.DataFrame], allocation: Sequence[str], la_code: str | None
) -> tuple[DatasetQuality, ...]:
    """Each dataset's whole suite once over all its rows (great-expectations' cost is mostly
    per expectation and per validation, not per row), then only the failed expectations per
    LA. Uniqueness is over (la_code, key), so "unique per LA" holds across the whole table."""
    gx = _import_great_expectations()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = _progress_bars_off()
    source = context.data_sources.add_pandas("warehouse")
    results = []
    for dataset, frame in frames.items():
        if frame.empty:
            continue
        batches = source.add_dataframe_asset(name=f"clean.{dataset}")
        per_frame = batches.add_batch_definition_whole_dataframe("rows")
        specs = suite_specs(DATASETS[dataset], allocation)
        outcomes = _run_suite(gx, per_frame, frame, f"clean.{dataset}", specs)
        failed_keys = {(o.expectation, o.column) for o in outcomes if not o.success}
        failed = [s for s in specs if _spec_key(s) in failed_keys]
        by_la = () if la_code is not None else _by_la(gx, per_frame, frame, dataset, failed)
        results.append(DatasetQuality(dataset, la_code, len(frame), outcomes, by_la))
    return tuple(results)


def _by_la(
    gx: Any, per_frame: Any, frame: pd.DataFrame, dataset: str, specs: list[ExpectationSpec]
) -> tuple[DatasetQuality, ...]:
    if not specs:
        return ()
    breakdown = []
    for la, rows in frame.groupby(LA_CODE_COLUMN, sort=True):
        outcomes = _run_suite(gx, per_frame, rows, f"clean.{dataset}.{la}", specs)
        breakdown.append(DatasetQuality(dataset, str(la), len(rows), outcomes))
    return tuple(breakdown)


def _run_suite(
    gx: Any, per_frame: Any, frame: pd.DataFrame, name: str, specs: list[ExpectationSpec]
) -> tuple[ExpectationOutcome, ...]:
    suite = gx.ExpectationSuite(name=name)
    for spec in specs:
        suite.add_expectation(getattr(gx.expectations, spec.name)(**spec.kwargs))
    batch = per_frame.get_batch(batch_parameters={"dataframe": frame})
    validation = batch.validate(suite, result_format=_RESULT_FORMAT)
    return tuple(_outcome(r) for r in validation.results)


def _import_great_expectations() -> Any:
    # Before the import: great-expectations reads this when it loads.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


def _progress_bars_off() -> Any:
    from great_expectations.data_context.types.base import ProgressBarsConfig

    return ProgressBarsConfig(globally=False, metric_calculations=False)


def _outcome(result: Any) -> ExpectationOutcome:
    config = result.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column") or ",".join(kwargs.get("column_list") or ())
    counts = {k: result.result.get(k) for k in _COUNT_KEYS}
    return ExpectationOutcome(
        expectation=str(config.type),
        column=str(column),
        success=bool(result.success),
        element_count=_int_or_none(counts["element_count"]),
        unexpected_count=_int_or_none(counts["unexpected_count"]),
        unexpected_percent=_float_or_none(counts["unexpected_percent"]),
    )


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def _float_or_none(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


# --- Markdown -------------------------------------------------------------------------------


def render_quality_markdown(report: QualityReport) -> str:
    """The report as Markdown: counts, percentages, rule and column names; no data value."""
    lines = [
        "# Data-quality report",
        "",
        f"Generated {report.generated_at.strftime('%Y-%m-%d %H:%M UTC')} over "
        f"{len(report.la_codes)} LA(s) in {report.seconds:.1f} s: "
        f"{report.evaluated} expectations evaluated, {report.failed} failed.",
        "",
    ]
    if not report.allocation_loaded:
        lines += ["**The trial allocation is not loaded: every `la_code` check fails.**", ""]
    lines += _summary_section(report)
    lines += _failures_section(report)
    lines += _cross_check_section(report)
    lines += _rejected_section(report)
    return "\n".join(lines).rstrip() + "\n"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _summary_section(report: QualityReport) -> list[str]:
    rows = [
        (f"`{name}`", t["rows"], t["evaluated"], t["failed"])
        for name, t in sorted(report.per_dataset().items())
    ]
    header = ("Dataset", "Rows", "Expectations", "Failed")
    return ["## Expectations per dataset", "", *_table(header, rows)]


def _failures_section(report: QualityReport) -> list[str]:
    rows = [
        cells
        for v in sorted(report.validations, key=lambda v: v.dataset)
        for part in (v, *v.by_la)
        for cells in _failure_rows(part)
    ]
    if not rows:
        return ["## Failed expectations", "", "None.", ""]
    header = ("Dataset", "LA", "Expectation", "Column", "Unexpected", "%", "Rows")
    return [
        "## Failed expectations",
        "",
        "Each failure over all LAs' rows, then the LAs in which it fails.",
        "",
        *_table(header, rows),
    ]


def _failure_rows(part: DatasetQuality) -> Iterator[tuple[str, ...]]:
    for o in part.outcomes:
        if not o.success:
            yield (
                f"`{part.dataset}`",
                part.la_code or "all",
                f"`{o.expectation}`",
                f"`{o.column}`",
                _count(o.unexpected_count),
                _percent(o.unexpected_percent),
                _count(o.element_count),
            )


def _cross_check_section(report: QualityReport) -> list[str]:
    rows = [
        (
            f"`{c.finding.dataset}`",
            c.la_code,
            f"`{c.finding.column}`",
            f"`{c.finding.rule}`",
            c.finding.rows,
            "yes" if c.finding.target_received else "not yet",
        )
        for c in report.cross_checks
    ]
    if not rows:
        return ["## Cross-dataset checks", "", "None found.", ""]
    header = ("Dataset", "LA", "Column", "Rule", "Rows", "Referenced dataset received")
    return ["## Cross-dataset checks", "", *_table(header, rows)]


def _rejected_section(report: QualityReport) -> list[str]:
    rows = [
        (f"`{r.dataset}`", r.la_code, f"`{r.rule}`", r.severity, r.rows) for r in report.rejected
    ]
    title = "## Row issues in the current returns (by rule)"
    if not rows:
        return [title, "", "None.", ""]
    return [title, "", *_table(("Dataset", "LA", "Rule", "Severity", "Rows"), rows)]


def _count(value: int | None) -> str:
    return "" if value is None else str(value)


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


# --- where the report goes ------------------------------------------------------------------


def write_report(markdown: str, directory: Path, name: str = QUALITY_FILE) -> Path:
    """Write atomically, so a reader never sees half a report."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    partial = directory / f".{name}.partial"
    partial.write_text(markdown, encoding="utf-8")
    partial.replace(path)
    return path


def main_quality(settings: Settings, *, out: Path | None = None, la_code: str | None = None) -> int:
    """`trial-ingest quality [--out PATH] [--la CODE]`: write the report, print the counts."""
    warehouse = Warehouse(settings.warehouse_url)
    try:
        report = quality_report(warehouse, la_code=la_code)
    finally:
        warehouse.dispose()
    markdown = render_quality_markdown(report)
    path = (
        write_report(markdown, out.parent, out.name)
        if out is not None
        else write_report(markdown, settings.quality_dir)
    )
    print(
        f"Quality report: {report.evaluated} expectations over {len(report.la_codes)} LA(s), "
        f"{report.failed} failed; {len(report.cross_checks)} cross-dataset finding(s); "
        f"{report.seconds:.1f} s. Written to {path}"
    )
    return 0
