"""From a grid of text cells (a CSV's records, a sheet's rows) to a unit: the header row, the
dataset it belongs to, and the data rows under it.

No value from the grid reaches an issue: issues name units, rows by number and columns by
letter.

Decisions where the specification is silent:

- The header row is the first row with any non-blank cell; row numbers are those a spreadsheet
  shows (the CSV's record number, blank lines included; the sheet's own row number).
- A row whose recognised cells are all blank is not a data row (Excel writes `,,,` rows).
- A CSV row with more cells than the header row, where the extra cells are not blank, rejects
  the unit: it is almost always an unquoted comma that shifted the row's values into the wrong
  columns, and loading it would store them under the wrong fields. Shorter rows are padded.
- A column with a blank header that holds data is reported as an unknown column and ignored.
"""

from __future__ import annotations

import polars as pl

from schemas.contract import Dataset, Treatment, normalise_header
from schemas.headers import HeaderMatch, column_letter, detect_dataset, unknown_column_issues
from schemas.outcome import ROW_NUMBER, FileIssue, RawTable
from schemas.reader.units import Unit, join_where
from schemas.rules import EMPTY_FILE, UNKNOWN_COLUMN, UNREADABLE_FILE, Severity

_MAX_ROWS_LISTED = 10
_DROPPED_DATA = "_dropped_data"


def unit_from_grid(
    grid: pl.DataFrame,
    positions: list[int],
    *,
    source: str,
    ignored_rule: str,
    from_excel: bool,
    header_fields: int | None = None,
) -> Unit:
    """Find the header, recognise the dataset and cut the data rows out of a grid of text.

    `positions` are the grid columns' 0-based spreadsheet positions. `header_fields` is how many
    cells the CSV's first record has, when some later record has more.
    """
    unit = Unit(source, ignored_rule)
    grid = grid.rename(dict(zip(grid.columns, (f"c{p}" for p in positions), strict=True)))
    header_index = first_non_blank_row(grid)
    if header_index is None:
        unit.unrecognised = FileIssue(EMPTY_FILE, Severity.ERROR)
        return unit
    header = header_cells(grid, header_index, positions)
    match = detect_dataset(header)
    if match.dataset is None:
        unit.unrecognised = match.issue
        return unit
    body = grid.slice(header_index + 1).with_columns(
        (pl.int_range(pl.len(), dtype=pl.Int64) + header_index + 2).alias(ROW_NUMBER)
    )
    width = _header_width(header, header_index, header_fields)
    too_long = _rows_with_cells_beyond(body, positions, width)
    if too_long:
        detail = f"{_describe_rows(too_long)} more cells than the header row"
        unit.issues.append(FileIssue(UNREADABLE_FILE, Severity.ERROR, where=source, detail=detail))
        return unit
    unit.issues.extend(unknown_column_issues(match, source=source))
    unit.issues.extend(_blank_headed_columns_with_data(body, header, positions, width, source))
    frame = data_frame(body, match)
    if frame.height == 0:
        unit.issues.append(no_data_rows_issue(match.dataset, source))
        return unit
    unit.table = RawTable(match.dataset, source, frame, from_excel=from_excel)
    return unit


def non_blank(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars().str.len_bytes().fill_null(0) > 0


def first_non_blank_row(grid: pl.DataFrame) -> int | None:
    """Index of the first row with a non-blank cell, looking at a slice at a time."""
    if grid.width == 0:
        return None
    step = 1024
    for start in range(0, grid.height, step):
        window = grid.slice(start, step).select(
            pl.any_horizontal(non_blank(c) for c in grid.columns)
        )
        hits = window.to_series().arg_true()
        if hits.len():
            return start + int(hits[0])
    return None


def header_cells(grid: pl.DataFrame, header_index: int, positions: list[int]) -> list[str]:
    header = [""] * (max(positions) + 1)
    for position, cell in zip(positions, grid.row(header_index), strict=True):
        header[position] = cell or ""
    return header


def _header_width(header: list[str], header_index: int, header_fields: int | None) -> int | None:
    """How many cells the header row has, when some row may have more (CSV only)."""
    if header_fields is None:
        return None
    if header_index == 0 and header_fields > 0:
        return header_fields
    return max((i + 1 for i, cell in enumerate(header) if normalise_header(cell)), default=0)


def _rows_with_cells_beyond(
    body: pl.DataFrame, positions: list[int], width: int | None
) -> list[int]:
    if width is None:
        return []
    beyond = [f"c{p}" for p in positions if p >= width]
    if not beyond:
        return []
    rows = body.filter(pl.any_horizontal(non_blank(c) for c in beyond))
    return rows.get_column(ROW_NUMBER).head(_MAX_ROWS_LISTED + 1).to_list()


def _describe_rows(rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:_MAX_ROWS_LISTED])
    if len(rows) > _MAX_ROWS_LISTED:
        return f"rows {shown} and more have"
    return f"row {shown} has" if len(rows) == 1 else f"rows {shown} have"


def _blank_headed_columns_with_data(
    body: pl.DataFrame, header: list[str], positions: list[int], width: int | None, source: str
) -> list[FileIssue]:
    blank_headed = [
        p for p in positions if not normalise_header(header[p]) and (width is None or p < width)
    ]
    if not blank_headed:
        return []
    has_data = body.select(non_blank(f"c{p}").any() for p in blank_headed).row(0)
    return [
        blank_headed_issue(p, source)
        for p, found in zip(blank_headed, has_data, strict=True)
        if found
    ]


def blank_headed_issue(position: int, source: str) -> FileIssue:
    detail = "cells under a blank header were ignored"
    where = join_where(source, f"column {column_letter(position)}")
    return FileIssue(UNKNOWN_COLUMN, Severity.WARNING, where=where, detail=detail)


def data_frame(body: pl.DataFrame, match: HeaderMatch) -> pl.DataFrame:
    """ROW_NUMBER + the recognised columns, stripped, blank rows out, dropped fields gone.

    Dropped columns are only looked at to tell a data row from a blank one: they are never
    copied, stripped or kept.
    """
    assert match.dataset is not None
    dropped = {f.name for f in match.dataset.fields if f.treatment is Treatment.DROP}
    recognised = sorted(match.columns)
    kept = [p for p in recognised if match.columns[p] not in dropped]
    kept_cells = [f"c{p}" for p in kept]
    dropped_cells = [f"c{p}" for p in recognised if p not in kept]
    stripped = pl.col(kept_cells).str.strip_chars()
    return (
        body.lazy()
        .select(
            ROW_NUMBER,
            pl.when(stripped.str.len_bytes() > 0).then(stripped).name.keep(),
            pl.any_horizontal(False, *(non_blank(c) for c in dropped_cells)).alias(_DROPPED_DATA),
        )
        .filter(pl.any_horizontal(pl.col(_DROPPED_DATA), pl.col(kept_cells).is_not_null()))
        .select(ROW_NUMBER, *(pl.col(f"c{p}").alias(match.columns[p]) for p in kept))
        .collect()
    )


def no_data_rows_issue(dataset: Dataset, source: str = "") -> FileIssue:
    detail = f"recognised as {dataset.name}, but there are no data rows"
    return FileIssue(EMPTY_FILE, Severity.ERROR, where=source, detail=detail)
