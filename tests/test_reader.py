"""Reading submitted files: CSV encodings, headers, blank and ragged rows, workbooks and ZIPs.

Every file is built inside the test; every issue produced is checked for the canary text that
the files carry, because no value from a file may ever reach an issue.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Sequence
from dataclasses import astuple
from datetime import date, datetime

import polars as pl
import pytest
import xlsxwriter  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.datasets import DATASETS
from schemas.outcome import ROW_NUMBER, FileIssue, RawTable, ReadResult
from schemas.parse import parse_table
from schemas.reader import read_submission
from schemas.rules import (
    EMPTY_FILE,
    SHEET_IGNORED,
    UNKNOWN_COLUMN,
    UNKNOWN_DATASET,
    UNREADABLE_FILE,
    ZIP_MEMBER_IGNORED,
    ZIP_NESTED,
    ZIP_TOO_LARGE,
    Severity,
)

CANARY = "Zoë-Canary"
KEYWORKER_HEADER = "keyworker_id,first_name,team,role,start_date"


def _read(content: bytes, **kwargs: int) -> ReadResult:
    result = read_submission(content, **kwargs)
    _assert_no_canary(result.issues)
    return result


def _assert_no_canary(issues: Sequence[FileIssue]) -> None:
    for issue in issues:
        for part in astuple(issue):
            assert "Canary" not in str(part)
            assert "canary" not in str(part)


def _rules(result: ReadResult) -> list[tuple[str, Severity, str]]:
    return [(i.rule, i.severity, i.where) for i in result.issues]


def _only_table(result: ReadResult) -> RawTable:
    assert len(result.tables) == 1, result.issues
    return result.tables[0]


def _only_frame(result: ReadResult) -> pl.DataFrame:
    return _only_table(result).frame


def _csv(*lines: str, end: str = "\n") -> bytes:
    return (end.join(lines) + end).encode()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _xlsx(sheets: dict[str, list[tuple[int, int, object]]]) -> bytes:
    """A workbook from (row, column, value) cells, 0-based, one entry per sheet."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    date_format = workbook.add_format({"num_format": "dd/mm/yyyy"})
    for name, cells in sheets.items():
        sheet = workbook.add_worksheet(name)
        for row, column, value in cells:
            if isinstance(value, datetime):
                sheet.write_datetime(row, column, value, date_format)
            else:
                sheet.write(row, column, value)
    workbook.close()
    return buffer.getvalue()


def _row_cells(
    row: int, values: Sequence[object], first_column: int = 0
) -> list[tuple[int, int, object]]:
    return [(row, first_column + i, v) for i, v in enumerate(values) if v is not None]


# --- CSV: encodings ----------------------------------------------------------------------------


def test_windows_1252_with_pound_sign_and_accents() -> None:
    text = _csv(KEYWORKER_HEADER, "K1,Zoë,Café £ Team,keyworker,2024-09-01").decode()
    content = text.encode("cp1252")

    frame = _only_frame(_read(content))

    assert frame.get_column("team").to_list() == ["Café £ Team"]
    assert "first_name" not in frame.columns


def test_utf8_with_bom() -> None:
    content = b"\xef\xbb\xbf" + _csv(KEYWORKER_HEADER, "K1,Zoë,Équipe,KEYWORKER,2024-09-01")

    frame = _only_frame(_read(content))

    assert frame.columns == [ROW_NUMBER, "keyworker_id", "team", "role", "start_date"]
    assert frame.row(0) == (2, "K1", "Équipe", "KEYWORKER", "2024-09-01")


@pytest.mark.parametrize("content", [b"a,b\n\x00\x01,2\n", "person_id\u0000".encode("utf-16")])
def test_nul_bytes_are_unreadable(content: bytes) -> None:
    result = _read(content)

    assert _rules(result) == [(UNREADABLE_FILE, Severity.ERROR, "")]


def test_bytes_undefined_in_windows_1252_are_unreadable() -> None:
    result = _read(b"keyworker_id,role,start_date\nK\x81,x,y\n")

    assert _rules(result) == [(UNREADABLE_FILE, Severity.ERROR, "")]


def test_binary_garbage() -> None:
    garbage = bytes(range(256)) * 40

    result = _read(garbage)

    assert result.tables == []
    assert [i.rule for i in result.issues] == [UNREADABLE_FILE]


def test_old_excel_files_are_named_as_such() -> None:
    result = _read(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600))

    assert _rules(result) == [(UNREADABLE_FILE, Severity.ERROR, "")]
    assert ".xls" in result.issues[0].detail


# --- CSV: headers --------------------------------------------------------------------------------


def test_header_aliases_odd_case_and_spacing() -> None:
    content = _csv(
        " LAchildID , Family ID ,ROLE,DOB,Gender,Forename,  la code ",
        f"P1,F1,child,01/02/2015,1,{CANARY},201",
    )

    result = _read(content)
    frame = _only_frame(result)

    assert result.tables[0].dataset is DATASETS["people"]
    assert frame.columns == [
        ROW_NUMBER,
        "person_id",
        "family_id",
        "role",
        "date_of_birth",
        "sex",
        "la_code",
    ]
    assert frame.row(0) == (2, "P1", "F1", "child", "01/02/2015", "1", "201")


def test_person_id_spelled_with_a_space() -> None:
    frame = _only_frame(_read(_csv("Person ID,family_id,role,sex", "P1,F1,CHILD,F")))

    assert frame.get_column("person_id").to_list() == ["P1"]


def test_no_header_row_names_no_cell() -> None:
    content = _csv(
        f"P001,F001,CHILD,{CANARY},Smith,12/03/2015,SW1A 1AA,F",
        f"P002,F001,PARENT_CARER,{CANARY},Smith,01/01/1985,SW1A 1AA,M",
    )

    result = _read(content)

    assert result.tables == []
    assert _rules(result) == [(UNKNOWN_DATASET, Severity.ERROR, "")]
    detail = result.issues[0].detail
    assert "columns A, B, C, D, E, F, G, H" in detail
    for cell in ("P001", "F001", "CHILD", "Smith", "12/03/2015", "SW1A"):
        assert cell not in detail


def test_unknown_columns_are_warned_about_by_letter() -> None:
    content = _csv("keyworker_id,role,Shoe size,start_date", f"K1,KEYWORKER,{CANARY},2024-09-01")

    result = _read(content)

    assert _rules(result) == [(UNKNOWN_COLUMN, Severity.WARNING, "column C")]
    assert _only_frame(result).columns == [ROW_NUMBER, "keyworker_id", "role", "start_date"]


def test_data_under_a_blank_header_is_warned_about() -> None:
    content = _csv(
        "keyworker_id,role,start_date,,,--",
        f"K1,KEYWORKER,2024-09-01,,{CANARY},",
        f"K2,KEYWORKER,2024-09-01,,,{CANARY}",
    )

    result = _read(content)

    assert _rules(result) == [
        (UNKNOWN_COLUMN, Severity.WARNING, "column E"),
        (UNKNOWN_COLUMN, Severity.WARNING, "column F"),
    ]
    assert _only_frame(result).height == 2


def test_leading_blank_lines_before_the_header_keep_row_numbers() -> None:
    content = _csv("", ",,", "keyworker_id,role,start_date", "K1,KEYWORKER,2024-09-01")

    frame = _only_frame(_read(content))

    assert frame.get_column(ROW_NUMBER).to_list() == [4]


# --- CSV: rows -----------------------------------------------------------------------------------


def test_blank_rows_are_skipped_and_row_numbers_kept() -> None:
    content = _csv(
        "keyworker_id,role,start_date",
        "K1,KEYWORKER,2024-09-01",
        ",,",
        "",
        "  ,\t, ",
        "K2,KEYWORKER,2024-09-02",
        ",,",
        ",,",
        ",,",
        end="\r\n",
    )

    frame = _only_frame(_read(content))

    assert frame.get_column(ROW_NUMBER).to_list() == [2, 6]
    assert frame.get_column("keyworker_id").to_list() == ["K1", "K2"]


def test_cells_are_stripped_and_blank_cells_are_null() -> None:
    frame = _only_frame(_read(_csv("keyworker_id,team,role,start_date", "  K1 ,   , KEYWORKER ,")))

    assert frame.row(0) == (2, "K1", None, "KEYWORKER", None)


def test_a_row_with_only_a_dropped_field_is_still_a_row() -> None:
    frame = _only_frame(_read(_csv(KEYWORKER_HEADER, f",{CANARY},,,")))

    assert frame.rows() == [(2, None, None, None, None)]


def test_quoted_newlines_count_as_one_row() -> None:
    content = _csv(
        "episode_id,family_id,keyworker_id,referral_date,start_date,notes",
        f'E1,F1,K1,2024-09-01,2024-09-02,"{CANARY}\nsecond line\nthird"',
        'E2,F1,K1,2024-09-01,2024-09-02,"say ""hi"", then go"',
    )

    frame = _only_frame(_read(content))

    assert frame.get_column(ROW_NUMBER).to_list() == [2, 3]
    assert "notes" not in frame.columns


def test_ids_keep_their_leading_zeros() -> None:
    frame = _only_frame(_read(_csv("keyworker_id,role,start_date", "000123,KEYWORKER,2024-09-01")))

    assert frame.get_column("keyworker_id").to_list() == ["000123"]


def test_short_rows_are_padded() -> None:
    frame = _only_frame(_read(_csv("keyworker_id,role,start_date,team", "K1,KEYWORKER", "K2")))

    assert frame.rows() == [(2, "K1", "KEYWORKER", None, None), (3, "K2", None, None, None)]


def test_long_rows_with_data_reject_the_file_naming_the_rows() -> None:
    content = _csv(
        "keyworker_id,role,start_date",
        "K1,KEYWORKER,2024-09-01",
        f"K2,KEYWORKER,{CANARY},2024-09-01",
        "K3,KEYWORKER,2024-09-01,,",
        f"K4,KEYWORKER,2024-09-01,x,{CANARY},y,z,a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r",
    )

    result = _read(content)

    assert result.tables == []
    assert _rules(result) == [(UNREADABLE_FILE, Severity.ERROR, "")]
    assert result.issues[0].detail == "rows 3, 5 have more cells than the header row"


def test_long_rows_with_blank_extra_cells_are_fine() -> None:
    frame = _only_frame(_read(_csv("keyworker_id,role,start_date", "K1,KEYWORKER,2024-09-01,,  ,")))

    assert frame.height == 1


def test_unbalanced_quotes_are_unreadable() -> None:
    content = _csv(KEYWORKER_HEADER, f'K1,"{CANARY},North,KEYWORKER,2024-09-01', "K2,A,B,C,D")

    result = _read(content)

    assert result.tables == []
    assert _rules(result) == [(UNREADABLE_FILE, Severity.ERROR, "")]


def test_classic_mac_line_ends() -> None:
    frame = _only_frame(_read(b"keyworker_id,role,start_date\rK1,KEYWORKER,2024-09-01\r"))

    assert frame.rows() == [(2, "K1", "KEYWORKER", "2024-09-01")]


# --- empty files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"", b"   \r\n\r\n", b"\xef\xbb\xbf", b",,,\n,,,\n"],
    ids=["empty", "blank lines", "bom only", "commas only"],
)
def test_empty_files(content: bytes) -> None:
    result = _read(content)

    assert _rules(result) == [(EMPTY_FILE, Severity.ERROR, "")]


@pytest.mark.parametrize(
    "content",
    [
        _csv(KEYWORKER_HEADER),
        _csv(KEYWORKER_HEADER, ",,,,", "", ",,,,"),
        _csv(KEYWORKER_HEADER, " , ,,,"),
    ],
    ids=["header only", "header and blank rows", "header and spaces"],
)
def test_a_header_without_data_rows_is_an_empty_file(content: bytes) -> None:
    result = _read(content)

    assert result.tables == []
    assert _rules(result) == [(EMPTY_FILE, Severity.ERROR, "")]
    assert "keyworkers" in result.issues[0].detail


# --- XLSX ----------------------------------------------------------------------------------------


def _keyworker_sheet(first_row: int = 0, first_column: int = 0) -> list[tuple[int, int, object]]:
    header = [
        "keyworker_id",
        "first_name",
        "team",
        "role",
        "start_date",
        "fte",
        "social_work_qualified",
    ]
    rows: list[list[object]] = [
        [123, CANARY, "North", "KEYWORKER", datetime(2024, 9, 1), 0.5, True],
        ["000123", None, "  South  ", "keyworker", 45536, 1, "Y"],
        [],
        [1e20, None, None, "TEAM_MANAGER", "01/09/2024", 1.0, False],
    ]
    cells = _row_cells(first_row, header, first_column)
    for offset, values in enumerate(rows, start=1):
        cells += _row_cells(first_row + offset, values, first_column)
    return cells


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


# --- ZIP -----------------------------------------------------------------------------------------


def test_zip_with_two_csvs() -> None:
    people = _csv("person_id,family_id,role,sex", "P1,F1,CHILD,F")
    workers = _csv(KEYWORKER_HEADER, f"K1,{CANARY},North,KEYWORKER,2024-09-01")
    content = _zip({"returns/": b"", "returns/people.csv": people, "returns/staff.csv": workers})

    result = _read(content)

    assert result.issues == []
    assert [(t.dataset.name, t.source) for t in result.tables] == [
        ("people", "ZIP member 1"),
        ("keyworkers", "ZIP member 2"),
    ]


def test_zip_holding_a_workbook_a_readme_and_mac_litter() -> None:
    content = _zip(
        {
            "__MACOSX/._staff.xlsx": b"\x00\x05\x16\x07" + bytes(100),
            "README.txt": f"Sent by {CANARY}\nCall me".encode(),
            "staff.xlsx": _xlsx({"S": _keyworker_sheet(), "Notes": [(0, 0, CANARY)]}),
            "logo.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
        }
    )

    result = _read(content)

    assert [t.source for t in result.tables] == ["ZIP member 2, sheet 1"]
    assert _rules(result) == [
        (ZIP_MEMBER_IGNORED, Severity.WARNING, "ZIP member 3"),
        (ZIP_MEMBER_IGNORED, Severity.WARNING, "ZIP member 1"),
        (SHEET_IGNORED, Severity.WARNING, "ZIP member 2, sheet 2"),
    ]


def test_zip_with_nothing_recognised() -> None:
    result = _read(_zip({"a.csv": _csv(f"{CANARY},x", "1,2"), "b.bin": bytes(range(256))}))

    assert result.tables == []
    assert _rules(result) == [
        (ZIP_MEMBER_IGNORED, Severity.WARNING, "ZIP member 2"),
        (UNKNOWN_DATASET, Severity.ERROR, "ZIP member 1"),
    ]


@pytest.mark.parametrize("content", [_zip({}), _zip({"folder/": b"", "__MACOSX/._x": b"x"})])
def test_empty_zip(content: bytes) -> None:
    assert _rules(_read(content)) == [(EMPTY_FILE, Severity.ERROR, "")]


def test_zip_without_any_csv_or_xlsx() -> None:
    result = _read(_zip({"scan.pdf": b"%PDF-1.4\x00" + bytes(50)}))

    assert [(i.rule, i.severity) for i in result.issues] == [
        (ZIP_MEMBER_IGNORED, Severity.WARNING),
        (UNREADABLE_FILE, Severity.ERROR),
    ]


@pytest.mark.parametrize(
    "inner",
    [
        _zip({"people.csv": _csv("person_id,family_id,role,sex", "P1,F1,CHILD,F")}),
        b"\x1f\x8b\x08\x00" + bytes(30),
    ],
    ids=["zip", "gzip"],
)
def test_nested_archives_are_refused(inner: bytes) -> None:
    content = _zip(
        {"staff.csv": _csv(KEYWORKER_HEADER, "K1,A,B,KEYWORKER,2024-09-01"), "more.zip": inner}
    )

    result = _read(content)

    assert (ZIP_NESTED, Severity.ERROR, "ZIP member 2") in _rules(result)


def test_zip_bomb_is_refused_by_declared_size() -> None:
    content = _zip({"bomb.csv": b"0" * 5_000_000})

    assert len(content) < 20_000
    assert _rules(_read(content, max_unpacked_bytes=1_000_000)) == [
        (ZIP_TOO_LARGE, Severity.ERROR, "")
    ]


def test_zip_members_together_too_large() -> None:
    members = {f"m{i}.csv": _csv(KEYWORKER_HEADER, *["K1,A,B,C,D"] * 2000) for i in range(4)}
    content = _zip(members)
    one_member = len(members["m0.csv"])

    assert len(_read(content, max_unpacked_bytes=4 * one_member).tables) == 4
    assert _rules(_read(content, max_unpacked_bytes=4 * one_member - 1)) == [
        (ZIP_TOO_LARGE, Severity.ERROR, "")
    ]


def _lie_about_size(archive: bytes, real_size: int, claimed_size: int) -> bytes:
    """Rewrite the uncompressed size in the local and central headers of a one-member ZIP."""
    real = real_size.to_bytes(4, "little")
    assert archive.count(real) == 2
    return archive.replace(real, claimed_size.to_bytes(4, "little"))


def test_zip_bomb_lying_about_its_size_is_not_unpacked() -> None:
    real_size = 7_654_321
    content = _lie_about_size(_zip({"bomb.csv": b"1" * real_size}), real_size, 1000)

    result = _read(content, max_unpacked_bytes=100_000)

    assert result.tables == []
    assert [i.rule for i in result.issues] == [UNREADABLE_FILE]


def test_corrupt_zip_is_unreadable() -> None:
    content = _zip({"a.csv": _csv(KEYWORKER_HEADER, "K1,A,B,C,D")})

    result = _read(content[: len(content) // 2])

    assert [i.rule for i in result.issues] == [UNREADABLE_FILE]


def test_password_protected_members_are_reported() -> None:
    content = bytearray(_zip({"a.csv": _csv(KEYWORKER_HEADER, "K1,A,B,C,D")}))
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = content.find(signature)
        content[at + flag_offset] |= 0x1

    result = _read(bytes(content))

    assert _rules(result) == [(UNREADABLE_FILE, Severity.ERROR, "ZIP member 1")]


# --- robustness ----------------------------------------------------------------------------------


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_any_bytes_are_read_without_raising(content: bytes) -> None:
    result = read_submission(content)

    assert result.tables or any(i.severity is Severity.ERROR for i in result.issues)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.lists(st.text(st.characters(codec="utf-8"), max_size=8), max_size=6),
        max_size=8,
    ),
    st.booleans(),
)
def test_issues_never_carry_cell_text(rows: list[list[str]], with_header: bool) -> None:
    def quoted(cell: str) -> str:
        return '"' + ("Canary" + cell).replace('"', '""') + '"'

    lines = [",".join(quoted(c) for c in row) for row in rows]
    if with_header:
        lines.insert(0, "keyworker_id,role,start_date")
    result = read_submission("\n".join(lines).encode())

    _assert_no_canary(result.issues)


_WORKBOOK = _xlsx({"Staff": _keyworker_sheet(), "Notes": [(0, 0, CANARY)]})


@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=20))
def test_damaged_workbooks_are_read_without_raising(damage: list[tuple[int, int]]) -> None:
    content = bytearray(_WORKBOOK)
    for at, value in damage:
        content[at % len(content)] = value

    result = _read(bytes(content))

    assert result.tables or any(i.severity is Severity.ERROR for i in result.issues)


# --- speed ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_large_csv_is_read_and_parsed_without_python_loops() -> None:
    rows = 200_000
    lines = [
        "episode_id,family_id,keyworker_id,team,referral_date,start_date,need_health,notes",
        *(
            f"E{i},F{i % 9000},K{i % 50},Team {i % 7},01/02/2025,2025-02-03,Y,text"
            for i in range(rows)
        ),
    ]
    content = "\n".join(lines).encode()

    started = time.perf_counter()
    table = _only_table(read_submission(content))
    typed, issues = parse_table(table, today=date(2025, 6, 1))
    elapsed = time.perf_counter() - started

    assert typed.height == rows
    assert issues.is_empty()
    assert elapsed < 2.0  # ~0.2 s measured; a per-row Python loop takes several seconds
