"""Reading any bytes at all: the reader never raises and no issue carries cell text."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reader_files import (
    CANARY,
    _assert_no_canary,
    _keyworker_sheet,
    _read,
    _xlsx,
)

from schemas.reader import read_submission
from schemas.rules import Severity


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
