"""Hostile XLSX workbooks, written part by part with zipfile: the sheet XML is ours to shape,
which no spreadsheet library would write (cells far out, no references, DTDs).

Shared by the reader's bounds tests and the checker and pipeline tests that refuse them.
"""

from __future__ import annotations

import io
import zipfile

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType='
    '"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>'
)
_PACKAGE_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELATIONSHIPS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_WORKSHEET = _RELATIONSHIPS + "/worksheet"


def workbook(*sheets: str, shared_strings: list[str] | None = None, sst_xml: str = "") -> bytes:
    """A workbook of sheets, each given as its `<sheetData>` content (or a whole sheet part,
    when it starts with `<?xml`); shared strings as texts or as the whole part."""
    names = "".join(
        f'<sheet name="S{n}" sheetId="{n}" r:id="rId{n}"/>' for n in range(1, len(sheets) + 1)
    )
    book = (
        f'<workbook xmlns="{_MAIN}" xmlns:r="{_RELATIONSHIPS}"><sheets>{names}</sheets></workbook>'
    )
    links = "".join(
        f'<Relationship Id="rId{n}" Type="{_WORKSHEET}" Target="worksheets/sheet{n}.xml"/>'
        for n in range(1, len(sheets) + 1)
    )
    rels = f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{links}</Relationships>'
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _PACKAGE_RELS)
        archive.writestr("xl/workbook.xml", book)
        archive.writestr("xl/_rels/workbook.xml.rels", rels)
        for n, sheet in enumerate(sheets, start=1):
            archive.writestr(f"xl/worksheets/sheet{n}.xml", _sheet_part(sheet))
        if shared_strings is not None or sst_xml:
            archive.writestr("xl/sharedStrings.xml", sst_xml or _shared_part(shared_strings or []))
    return buffer.getvalue()


def _sheet_part(sheet: str) -> str:
    if sheet.startswith("<?xml"):
        return sheet
    head = f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{_MAIN}">'
    return f"{head}<sheetData>{sheet}</sheetData></worksheet>"


def _shared_part(texts: list[str]) -> str:
    items = "".join(f"<si><t>{text}</t></si>" for text in texts)
    return f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{_MAIN}">{items}</sst>'


def text_cell(reference: str, text: str) -> str:
    return f'<c r="{reference}" t="inlineStr"><is><t>{text}</t></is></c>'


def number_cell(reference: str | None, value: int = 1) -> str:
    where = f' r="{reference}"' if reference else ""
    return f"<c{where}><v>{value}</v></c>"


def row(number: int | None, *cells: str) -> str:
    where = f' r="{number}"' if number else ""
    return f"<row{where}>{''.join(cells)}</row>"


def keyworkers_sheet(first_row: int = 1, rows: int = 2) -> str:
    """A small valid `keyworkers` table, header in `first_row`."""
    header = ["keyworker_id", "role", "start_date"]
    lines = [
        row(
            first_row,
            *(text_cell(f"{c}{first_row}", h) for c, h in zip("ABC", header, strict=True)),
        )
    ]
    for n in range(first_row + 1, first_row + 1 + rows):
        values = [f"KW{n}", "KEYWORKER", "2024-09-01"]
        lines.append(row(n, *(text_cell(f"{c}{n}", v) for c, v in zip("ABC", values, strict=True))))
    return "".join(lines)


def far_cell_workbook(reference: str = "XFD1048576") -> bytes:
    """A 2 KB workbook with a table and one cell at `reference`: calamine builds the grid
    from A1 to that cell (at XFD1048576, 512 GB, and the process aborts)."""
    digits = "".join(ch for ch in reference if ch.isdigit())
    return workbook(keyworkers_sheet() + row(int(digits), number_cell(reference)))
