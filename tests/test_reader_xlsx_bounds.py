"""Workbooks whose cells or text would make calamine allocate without bound: refused before
calamine opens them, with a reason, and never by the process dying.

Every hostile file is read in a child process: should the check regress, calamine aborts
that child (SIGABRT, no exception to catch), and the test fails instead of the test run.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hostile_workbooks import (
    far_cell_workbook,
    keyworkers_sheet,
    number_cell,
    row,
    text_cell,
    workbook,
)
from reader_files import CANARY, _read, _zip

from schemas.reader.unpacking import Budget
from schemas.reader.workbook_bounds import (
    NotPlainXml,
    OutOfBounds,
    WorkbookBounds,
    check_workbook,
)
from schemas.rules import UNREADABLE_FILE, XLSX_OUT_OF_BOUNDS, Severity

_READ_IN_A_CHILD = """
import json, sys
from schemas.reader import read_submission
out = []
for path in sys.argv[1:]:
    result = read_submission(open(path, "rb").read())
    out.append([[i.rule, i.severity.value, i.where, i.detail] for i in result.issues])
print(json.dumps(out))
"""


def read_in_a_child(tmp_path: Path, files: list[bytes]) -> list[list[list[str]]]:
    paths = []
    for number, content in enumerate(files):
        path = tmp_path / f"file{number}.xlsx"
        path.write_bytes(content)
        paths.append(str(path))
    done = subprocess.run(
        [sys.executable, "-c", _READ_IN_A_CHILD, *paths],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"the reader died ({done.returncode}): {done.stderr[-2000:]}"
    issues: list[list[list[str]]] = json.loads(done.stdout)
    return issues


_SHARED = 32_000
HOSTILE = {
    "a cell at XFD1048576": far_cell_workbook("XFD1048576"),
    "a cell at F10000000": far_cell_workbook("F10000000"),
    "a cell at IV1048576 (columns and rows each in bounds, the grid not)": far_cell_workbook(
        "IV1048576"
    ),
    "a reference in lower case": far_cell_workbook("xfd1048576"),
    "a cell with a namespace prefix": workbook(
        keyworkers_sheet() + '<row r="9"><x:c xmlns:x="urn:x" r="XFD9"><x:v>1</x:v></x:c></row>'
    ),
    "a reference not first": workbook(
        keyworkers_sheet() + '<row r="9"><c t="n" r="XFD9"><v>1</v></c></row>'
    ),
    "cells without references, far down": workbook(
        keyworkers_sheet() + row(10_000_000, number_cell(None))
    ),
    "20,000 cells without references in a row": workbook(
        keyworkers_sheet() + row(9, *[number_cell(None)] * 20_000)
    ),
    "a dimension of the whole sheet": workbook(
        f'<?xml version="1.0"?><worksheet xmlns="x"><dimension ref="A1:XFD1048576"/>'
        f"<sheetData>{keyworkers_sheet()}</sheetData></worksheet>"
    ),
    "20,000 cells sharing one 32,000-character string": workbook(
        keyworkers_sheet()
        + "".join(
            row(n, *(f'<c r="{c}{n}" t="s"><v>0</v></c>' for c in "DEFGHIJKLM"))
            for n in range(10, 2010)
        ),
        shared_strings=["y" * _SHARED],
    ),
}


def test_hostile_workbooks_are_refused_without_the_process_dying(tmp_path: Path) -> None:
    results = read_in_a_child(tmp_path, list(HOSTILE.values()))

    for (name, content), issues in zip(HOSTILE.items(), results, strict=True):
        assert len(content) < 200_000, name
        assert [(rule, severity) for rule, severity, _, _ in issues] == [
            (XLSX_OUT_OF_BOUNDS, Severity.ERROR.value)
        ], name
        assert issues[0][3], name  # the detail says which bound


def test_the_512_gb_workbook_is_refused_inside_a_zip_of_returns(tmp_path: Path) -> None:
    content = _zip(
        {
            "a.csv": b"keyworker_id,role,start_date\nKW1,KEYWORKER,2024-09-01\n",
            "b.xlsx": far_cell_workbook(),
        }
    )

    [issues] = read_in_a_child(tmp_path, [content])

    assert [(rule, where) for rule, _, where, _ in issues] == [(XLSX_OUT_OF_BOUNDS, "ZIP member 2")]


_DTD = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "{}">]>'
_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE sst [<!ENTITY l "lol">'
    + "".join(
        f'<!ENTITY l{n} "{("&l" + (str(n - 1) if n > 1 else "") + ";") * 10}">'
        for n in range(1, 10)
    )
    + ']><sst xmlns="x"><si><t>&l9;</t></si></sst>'
)


@pytest.mark.parametrize(
    "content",
    [
        workbook(_DTD.format(CANARY) + '<worksheet xmlns="x"><sheetData/></worksheet>'),
        workbook(
            '<?xml version="1.0"?><!DOCTYPE w [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            '<worksheet xmlns="x"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&e;'
            "</t></is></c></row></sheetData></worksheet>"
        ),
        workbook(keyworkers_sheet(), sst_xml=_LAUGHS),
    ],
    ids=["a DTD", "an external entity (XXE)", "billion laughs"],
)
def test_a_workbook_declaring_a_dtd_or_entities_is_refused_unread(content: bytes) -> None:
    result = _read(content)

    assert result.tables == []
    assert [(i.rule, i.detail) for i in result.issues] == [
        (UNREADABLE_FILE, "an XML part declares a DTD or entities")
    ]


def test_a_workbook_in_utf16_is_refused() -> None:
    sheet = '<?xml version="1.0" encoding="UTF-16"?><worksheet xmlns="x"><sheetData/></worksheet>'
    buffer = io.BytesIO()
    source = zipfile.ZipFile(io.BytesIO(workbook(keyworkers_sheet())))
    with source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = sheet.encode("utf-16")
            target.writestr(info.filename, data)

    result = _read(buffer.getvalue())

    assert [i.rule for i in result.issues] == [UNREADABLE_FILE]


def test_a_workbook_inside_the_bounds_is_read() -> None:
    far = "".join(
        row(
            n,
            text_cell(f"A{n}", f"KW{n}"),
            text_cell(f"B{n}", "KEYWORKER"),
            text_cell(f"C{n}", "2024-09-01"),
        )
        for n in range(2, 4)
    )
    header = row(
        1,
        *(
            text_cell(f"{c}1", h)
            for c, h in zip("ABC", ["keyworker_id", "role", "start_date"], strict=True)
        ),
    )
    notes = row(39_000, text_cell("IV39000", "notes"))  # the last column, 9,984,000 cells

    result = _read(workbook(header + far + notes))

    assert [t.dataset.name for t in result.tables] == ["keyworkers"]
    assert result.tables[0].frame.height == 2


def _bounds_issue(sheet: str, **bounds: int) -> str | None:
    content = workbook(sheet)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        try:
            check_workbook(archive, Budget(2**30), WorkbookBounds(**bounds))
        except (OutOfBounds, NotPlainXml) as refused:
            return str(refused)
    return None


_SMALL = {"columns": 5, "rows": 10, "cells": 40}


@pytest.mark.parametrize("with_references", [True, False])
def test_the_bounds_are_exact_however_cells_are_written(with_references: bool) -> None:
    """Cells written with references are read by array operations, without them tag by tag:
    both find the same last cell."""

    def sheet(last_row: int, columns: int) -> str:
        rows = []
        for n in range(1, last_row + 1):
            letters = "ABCDEFGHIJ"[:columns]
            cells = [number_cell(f"{c}{n}" if with_references else None) for c in letters]
            rows.append(row(n if with_references else None, *cells))
        return "".join(rows)

    assert _bounds_issue(sheet(8, 5), **_SMALL) is None  # 40 cells
    assert _bounds_issue(sheet(10, 4), **_SMALL) is None
    assert _bounds_issue(sheet(9, 5), **_SMALL) == "a sheet spans more than 40 cells"
    assert _bounds_issue(sheet(11, 1), **_SMALL) == ("a sheet has cells beyond column 5 or row 10")
    assert _bounds_issue(sheet(2, 6), **_SMALL) == "a sheet has cells beyond column 5 or row 10"


def test_shared_text_is_counted_once_per_cell_that_uses_it() -> None:
    cells = "".join(row(n, f'<c r="A{n}" t="s"><v>{n % 2}</v></c>') for n in range(1, 11))
    content = workbook(cells, shared_strings=["x" * 100, "y"])

    def refused(limit: int) -> bool:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            try:
                check_workbook(archive, Budget(2**30), WorkbookBounds(shared_text_bytes=limit))
            except OutOfBounds:
                return True
        return False

    # Five cells use each string, counted at its XML length (`<si><t>…</t></si>`).
    used = 5 * len("<si><t></t></si>" + "x" * 100) + 5 * len("<si><t></t></si>y")
    assert refused(used - 1)
    assert not refused(used)
