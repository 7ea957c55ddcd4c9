"""Units, and how they combine into the result for the whole file.

A *unit* is a CSV file or one sheet of a workbook. Each unit whose header row is recognised
becomes one `RawTable`. Units that are not recognised are ignored with a warning when
something else in the file was recognised, and reject the file when nothing was.

An ignored sheet or ZIP member's warning carries the header-matching detail (closest dataset,
missing columns), so an LA can tell a notes sheet from a return whose header went wrong.

A dataset recognised in more than one unit (two sheets, two files of a ZIP) rejects the whole
file (`DATASET_REPEATED`): which copy is the return is ambiguous, and the service keeps one
return per dataset. The units are named by position, never by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from schemas.outcome import FileIssue, RawTable, ReadResult
from schemas.rules import DATASET_REPEATED, EMPTY_FILE, Severity


@dataclass
class Unit:
    """One CSV file or one sheet, recognised (table and/or issues) or not (`unrecognised`)."""

    source: str
    ignored_rule: str
    table: RawTable | None = None
    issues: list[FileIssue] = field(default_factory=list)
    unrecognised: FileIssue | None = None


def combine(units: list[Unit], issues: list[FileIssue]) -> ReadResult:
    """Recognised units give tables; the rest are ignored, unless nothing was recognised."""
    tables = [u.table for u in units if u.table is not None]
    recognised = [u for u in units if u.unrecognised is None]
    if recognised or not units:
        for unit in units:
            issues.extend(unit.issues if unit.unrecognised is None else [_ignored(unit)])
        repeated = _repeated_datasets(tables)
        if repeated:
            return ReadResult([], [*issues, *repeated])
        return ReadResult(tables, issues)
    with_header = [u for u in units if u.unrecognised and u.unrecognised.rule != EMPTY_FILE]
    if not with_header:
        return ReadResult([], [*issues, FileIssue(EMPTY_FILE, Severity.ERROR)])
    issues.extend(replace(u.unrecognised, where=u.source) for u in with_header if u.unrecognised)
    return ReadResult([], issues)


def _repeated_datasets(tables: list[RawTable]) -> list[FileIssue]:
    """One error per dataset found in more than one unit, naming the units by position."""
    sources: dict[str, list[str]] = {}
    for table in tables:
        sources.setdefault(table.dataset.name, []).append(table.source)
    return [
        FileIssue(
            DATASET_REPEATED,
            Severity.ERROR,
            where=" and ".join(found),
            detail=f"{dataset} is in each of them",
        )
        for dataset, found in sources.items()
        if len(found) > 1
    ]


def _ignored(unit: Unit) -> FileIssue:
    assert unit.unrecognised is not None
    detail = unit.unrecognised.detail
    if unit.unrecognised.rule == EMPTY_FILE:
        detail = "it is empty"
    return FileIssue(unit.ignored_rule, Severity.WARNING, where=unit.source, detail=detail)


def join_where(prefix: str, part: str) -> str:
    """Where in the file, outermost first: `ZIP member 2, sheet 1`."""
    return f"{prefix}, {part}" if prefix else part
