"""Which dataset a header row belongs to, and which field each of its columns is.

A header cell is never repeated in a message unless it is a recognised name: a file without a
header row has a data row where the header should be, so an unrecognised header cell may be
personal data. Unrecognised columns are named by their spreadsheet letter instead ("column F").

Decisions where the specification is silent:

- A blank header cell is not a column: it is neither known nor unknown (Excel writes `a,b,,`
  when a cell beside the table was ever touched).
- Two header cells that name the same field make the header unusable for that dataset, because
  the service cannot know which one the LA meant; the header is then reported as matching no
  dataset, naming the field and the two column letters. A repeated *dropped* field (say two
  `notes` columns) is harmless, because both are dropped, and is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from schemas.contract import (
    LA_CODE_ALIASES,
    LA_CODE_COLUMN,
    Dataset,
    OneRequired,
    Treatment,
    normalise_header,
)
from schemas.datasets import DATASETS
from schemas.outcome import FileIssue
from schemas.rules import AMBIGUOUS_DATASET, EMPTY_FILE, UNKNOWN_COLUMN, UNKNOWN_DATASET, Severity

# Enough letters for an LA to find the columns; the rest are counted.
_MAX_LETTERS_LISTED = 10


@dataclass(frozen=True)
class HeaderMatch:
    """The outcome of reading one header row.

    `columns` maps the position of every recognised cell (0-based, column A = 0) to its
    canonical field name, `la_code` included. `issue` is set when no single dataset matches.
    """

    dataset: Dataset | None
    columns: dict[int, str]
    unknown_positions: tuple[int, ...]
    issue: FileIssue | None


@dataclass(frozen=True)
class _Fit:
    """How well one header fits one dataset."""

    dataset: Dataset
    columns: dict[int, str]
    unknown_positions: tuple[int, ...]
    missing: tuple[str, ...]  # required columns, or "a or b" for a one-of requirement
    requirements_met: int
    duplicated: dict[str, tuple[int, ...]]  # field -> its positions, for non-dropped fields

    @property
    def usable(self) -> bool:
        return not self.missing and not self.duplicated


def column_letter(position: int) -> str:
    """Spreadsheet letters for a 0-based column position: 0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    number = position + 1
    while number:
        number, remainder = divmod(number - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def describe_columns(positions: Iterable[int]) -> str:
    """'column F' or 'columns F, G' (long lists are cut short and counted)."""
    letters = [column_letter(p) for p in sorted(positions)]
    shown = ", ".join(letters[:_MAX_LETTERS_LISTED])
    if len(letters) > _MAX_LETTERS_LISTED:
        shown += f" and {len(letters) - _MAX_LETTERS_LISTED} more"
    return f"column {shown}" if len(letters) == 1 else f"columns {shown}"


def detect_dataset(
    headers: Sequence[str], *, datasets: Iterable[Dataset] = tuple(DATASETS.values())
) -> HeaderMatch:
    """Recognise the dataset of a header row (cells in file order, blank cells as '')."""
    normalised = [normalise_header(h) for h in headers]
    if not any(normalised):
        return HeaderMatch(None, {}, (), FileIssue(EMPTY_FILE, Severity.ERROR))
    fits = [_fit(dataset, normalised) for dataset in datasets]
    usable = [fit for fit in fits if fit.usable]
    if len(usable) > 1:
        usable = [fit for fit in usable if not fit.unknown_positions] or usable
    if len(usable) == 1:
        (fit,) = usable
        return HeaderMatch(fit.dataset, fit.columns, fit.unknown_positions, None)
    if usable:
        names = " and ".join(fit.dataset.name for fit in usable)
        issue = FileIssue(AMBIGUOUS_DATASET, Severity.ERROR, detail=f"matches {names}")
        return HeaderMatch(None, {}, (), issue)
    closest = max(fits, key=lambda fit: (fit.requirements_met, len(fit.columns)))
    issue = FileIssue(UNKNOWN_DATASET, Severity.ERROR, detail=_explain_mismatch(closest))
    return HeaderMatch(None, {}, (), issue)


def unknown_column_issues(match: HeaderMatch, *, source: str = "") -> list[FileIssue]:
    """One UNKNOWN_COLUMN warning per ignored column of a matched header."""
    prefix = f"{source}, " if source else ""
    return [
        FileIssue(UNKNOWN_COLUMN, Severity.WARNING, where=f"{prefix}column {column_letter(p)}")
        for p in match.unknown_positions
    ]


def _names(dataset: Dataset) -> dict[str, str]:
    """Normalised header spelling -> canonical field name, for every field, alias and la_code."""
    names = {normalise_header(alias): LA_CODE_COLUMN for alias in LA_CODE_ALIASES}
    names[normalise_header(LA_CODE_COLUMN)] = LA_CODE_COLUMN
    for field in dataset.fields:
        for spelling in (field.name, *field.aliases):
            names[normalise_header(spelling)] = field.name
    return names


def _fit(dataset: Dataset, normalised: Sequence[str]) -> _Fit:
    names = _names(dataset)
    columns: dict[int, str] = {}
    unknown: list[int] = []
    for position, header in enumerate(normalised):
        if not header:
            continue
        if header in names:
            columns[position] = names[header]
        else:
            unknown.append(position)
    present = set(columns.values())
    missing = [name for name in dataset.required_columns if name not in present]
    groups = [rule.fields for rule in dataset.rules if isinstance(rule, OneRequired)]
    missing += [" or ".join(group) for group in groups if present.isdisjoint(group)]
    requirements = len(dataset.required_columns) + len(groups)
    return _Fit(
        dataset=dataset,
        columns=columns,
        unknown_positions=tuple(unknown),
        missing=tuple(missing),
        requirements_met=requirements - len(missing),
        duplicated=_duplicated_fields(dataset, columns),
    )


def _duplicated_fields(dataset: Dataset, columns: dict[int, str]) -> dict[str, tuple[int, ...]]:
    positions: dict[str, list[int]] = {}
    for position, name in columns.items():
        positions.setdefault(name, []).append(position)
    dropped = {f.name for f in dataset.fields if f.treatment is Treatment.DROP}
    return {
        name: tuple(found)
        for name, found in positions.items()
        if len(found) > 1 and name not in dropped
    }


def _explain_mismatch(fit: _Fit) -> str:
    parts = [f"closest dataset: {fit.dataset.name}"]
    if fit.missing:
        parts.append("missing required columns: " + ", ".join(fit.missing))
    for name, positions in fit.duplicated.items():
        parts.append(f"{describe_columns(positions)} all name `{name}`")
    if fit.unknown_positions:
        parts.append("unrecognised " + describe_columns(fit.unknown_positions))
    return "; ".join(parts)
