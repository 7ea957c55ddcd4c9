"""Reading submitted XLSX workbooks: sheets, cell types, positions, broken and oversized ones."""

from __future__ import annotations

from datetime import date

from reader_files import (
    CANARY,
    _keyworker_sheet,
    _only_frame,
    _read,
    _row_cells,
    _rules,
    _xlsx,
    _zip,
)

from schemas.outcome import ROW_NUMBER
from schemas.parse import parse_table
from schemas.rules import (
    DATASET_REPEATED,
    EMPTY_FILE,
    SHEET_IGNORED,
    UNKNOWN_COLUMN,
    UNKNOWN_DATASET,
    UNREADABLE_FILE,
    ZIP_TOO_LARGE,
    Severity,
)


def test_xlsx_recognised_sheet_and_notes_sheet() -> None:
    content = _xlsx({"Staff list": _keyworker_sheet(), "Notes": [(0, 0, f"Extracted by {CANARY}")]})

    result = _read(content)
    table = result.tables[0]

    assert len(result.tables) == 1
    assert table.source == "sheet 1"
    assert table.from_excel
    assert _rules(result) == [(SHEET_IGNORED, Severity.WARNING, "sheet 2")]
    assert table.frame.rows() == [
        (2, "123", "North", "KEYWORKER", "2024-09-01 00:00:00", "0.5", "true"),
        (3, "000123", "South", "keyworker", "45536", "1", "Y"),
        (5, "100000000000000000000", None, "TEAM_MANAGER", "01/09/2024", "1", "false"),
    ]


def test_xlsx_cells_parse_to_the_right_types() -> None:
    table = _read(_xlsx({"Staff": _keyworker_sheet()})).tables[0]

    typed, issues = parse_table(table, today=date(2025, 1, 1))

    assert issues.is_empty()
    assert typed.get_column("start_date").to_list() == [date(2024, 9, 1)] * 3
    assert typed.get_column("fte").to_list() == [0.5, 1.0, 1.0]
    assert typed.get_column("social_work_qualified").to_list() == [True, True, False]


def test_xlsx_table_away_from_the_corner_keeps_real_row_numbers_and_letters() -> None:
    cells = [*_keyworker_sheet(first_row=3, first_column=2), (3, 9, "Comments"), (5, 9, CANARY)]

    result = _read(_xlsx({"Data": cells}))

    assert _only_frame(result).get_column(ROW_NUMBER).to_list() == [5, 6, 8]
    assert _rules(result) == [(UNKNOWN_COLUMN, Severity.WARNING, "sheet 1, column J")]


def test_xlsx_recognised_sheet_without_rows_is_an_empty_file_for_that_sheet() -> None:
    header = _row_cells(0, ["keyworker_id", "role", "start_date"])
    content = _xlsx({"A": _keyworker_sheet(), "B": header, "C": []})

    result = _read(content)

    assert [t.source for t in result.tables] == ["sheet 1"]
    assert _rules(result) == [
        (EMPTY_FILE, Severity.ERROR, "sheet 2"),
        (SHEET_IGNORED, Severity.WARNING, "sheet 3"),
    ]


def test_xlsx_with_no_recognised_sheet_is_rejected_per_sheet() -> None:
    content = _xlsx({"A": [(0, 0, CANARY), (1, 0, 5)], "B": [], "C": [(4, 1, "Totals")]})

    result = _read(content)

    assert result.tables == []
    assert _rules(result) == [
        (UNKNOWN_DATASET, Severity.ERROR, "sheet 1"),
        (UNKNOWN_DATASET, Severity.ERROR, "sheet 3"),
    ]


def test_xlsx_without_any_cell_is_an_empty_file() -> None:
    assert _rules(_read(_xlsx({"A": [], "B": []}))) == [(EMPTY_FILE, Severity.ERROR, "")]


def test_broken_xlsx_is_unreadable() -> None:
    content = _zip({"[Content_Types].xml": b"<nope", "xl/workbook.xml": CANARY.encode()})

    result = _read(content)

    assert [i.rule for i in result.issues] == [UNREADABLE_FILE]


def test_xlsx_larger_than_allowed_unpacked() -> None:
    big = _xlsx({"A": [(r, 0, f"padding {r}") for r in range(3000)]})

    assert [i.rule for i in _read(big, max_unpacked_bytes=20_000).issues] == [ZIP_TOO_LARGE]
    assert _read(big).tables == []  # read, but not recognised
    assert [i.rule for i in _read(big).issues] == [UNKNOWN_DATASET]


def test_a_dataset_on_two_sheets_rejects_the_whole_workbook() -> None:
    content = _xlsx(
        {
            "Staff": _keyworker_sheet(),
            CANARY: [(0, 0, "Notes")],
            f"Staff ({CANARY})": _keyworker_sheet(first_row=2),
        }
    )

    result = _read(content)

    assert result.tables == []
    assert (DATASET_REPEATED, Severity.ERROR, "sheet 1 and sheet 3") in _rules(result)
