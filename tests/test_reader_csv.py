"""Reading submitted CSV files: encodings, headers, blank and ragged rows, empty files, speed."""

from __future__ import annotations

import time
from datetime import date

import pytest
from reader_files import (
    CANARY,
    KEYWORKER_HEADER,
    _csv,
    _only_frame,
    _only_table,
    _read,
    _rules,
)

from schemas.datasets import DATASETS
from schemas.outcome import ROW_NUMBER
from schemas.parse import parse_table
from schemas.reader import read_submission
from schemas.rules import (
    EMPTY_FILE,
    UNKNOWN_COLUMN,
    UNKNOWN_DATASET,
    UNREADABLE_FILE,
    Severity,
)

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
