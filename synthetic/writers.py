"""Writing one LA's records into its drop folder, as CSV files and (for some LAs) a workbook."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import xlsxwriter  # type: ignore[import-untyped]

from schemas.contract import Field, Kind
from schemas.datasets import DATASETS
from synthetic import identifiers, lexicon
from synthetic.delivery import DateStyle, Delivery, header_text
from synthetic.manifest import DROP_FOLDER, DropFile, PlantedIssue
from synthetic.records import Cell, LaRecords, Row

# Fixed so that the same seed writes byte-identical workbooks (xlsxwriter stamps the time).
WORKBOOK_CREATED = datetime(2026, 1, 12, 9, 0, 0)
EXTRACT_STAMP = "20260112"
SHEET_NAMES = {
    "people": "People",
    "episodes": "Episodes",
    "csc_events": "CSC events",
    "keyworkers": "Key workers",
    "practice_activity": "Practice activity",
    "score15": "SCORE-15",
    "withdrawals": "Withdrawals",
}
NOTES_SHEET = "Notes"
GENDER_CODES = {"M": "1", "F": "2", "U": "9"}


@dataclass(frozen=True)
class Column:
    header: str
    spec: Field | None  # None: the LA code column


def write_drop(
    la: LaRecords, delivery: Delivery, trial_dir: Path
) -> tuple[list[DropFile], list[PlantedIssue]]:
    """Write every dataset of one LA under `trial_dir/drop/<la_code>/`."""
    folder = trial_dir / DROP_FOLDER / la.la_code
    folder.mkdir(parents=True, exist_ok=True)
    files: list[DropFile] = []
    issues: list[PlantedIssue] = []
    if delivery.workbook_datasets:
        drop_file, planted = _write_workbook(la, delivery, folder)
        files.append(drop_file)
        issues += planted
    for dataset in DATASETS:
        if dataset not in delivery.workbook_datasets:
            drop_file, planted = _write_csv(la, dataset, delivery, folder)
            files.append(drop_file)
            issues += planted
    return files, issues


def _relative(folder: Path, name: str) -> str:
    return f"{DROP_FOLDER}/{folder.name}/{name}"


def _columns(dataset: str, delivery: Delivery) -> list[Column]:
    columns = [
        Column(header_text(dataset, spec.name, delivery), spec)
        for spec in DATASETS[dataset].fields
        if spec.name not in delivery.omitted
    ]
    if delivery.column_order_seed is not None:
        random.Random(f"{delivery.column_order_seed}:{dataset}").shuffle(columns)
    if delivery.la_code_header is not None:
        columns.insert(0, Column(delivery.la_code_header, None))
    return columns


def _planted(
    la: LaRecords, path: str, dataset: str, sheet: str, rows: list[Row]
) -> list[PlantedIssue]:
    return [
        PlantedIssue(
            la_code=la.la_code,
            path=path,
            dataset=dataset,
            sheet=sheet,
            row_number=index,
            column=row.planted.column,
            rule=row.planted.rule,
            severity=row.planted.severity.value,
        )
        for index, row in enumerate(rows, start=2)
        if row.planted is not None
    ]


# --- CSV -------------------------------------------------------------------------------


def _write_csv(
    la: LaRecords, dataset: str, delivery: Delivery, folder: Path
) -> tuple[DropFile, list[PlantedIssue]]:
    name = _csv_name(dataset, la.la_name, delivery.file_naming)
    columns = _columns(dataset, delivery)
    rows = la.rows(dataset)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=delivery.line_end)
    writer.writerow([column.header for column in columns])
    for row in rows:
        writer.writerow([_cell_text(column, row, la.la_code, delivery) for column in columns])
    (folder / name).write_bytes(buffer.getvalue().encode(delivery.encoding))
    path = _relative(folder, name)
    drop_file = DropFile(la.la_code, path, (dataset,), {dataset: len(rows)}, {})
    return drop_file, _planted(la, path, dataset, "", rows)


def _csv_name(dataset: str, la_name: str, naming: int) -> str:
    if naming == 1:
        title = "".join(word.capitalize() for word in dataset.split("_"))
        return f"EH_{title}_{EXTRACT_STAMP}.csv"
    if naming == 2:
        return f"{la_name} {dataset.replace('_', ' ')} Q4 2025.csv"
    return f"{dataset}.csv"


# --- cell text -------------------------------------------------------------------------


def _cell_text(column: Column, row: Row, la_code: str, delivery: Delivery) -> str:
    if column.spec is None:
        return la_code
    return cell_text(column.spec, row.values.get(column.spec.name), delivery)


def cell_text(spec: Field, value: Cell, delivery: Delivery) -> str:
    """A value as this LA writes it. A `str` in a date or number column is written as is."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return delivery.flag_words[0] if value else delivery.flag_words[1]
    if isinstance(value, date):
        return _date_text(value, delivery.date_style)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return str(value)
    return _text(spec, value, delivery)


def _date_text(value: date, style: DateStyle) -> str:
    if style is DateStyle.ISO:
        return value.isoformat()
    uk = value.strftime("%d/%m/%Y")
    return f"{uk} 00:00" if style is DateStyle.UK_WITH_TIME else uk


def _text(spec: Field, value: str, delivery: Delivery) -> str:
    if spec.kind is Kind.CODE:
        if spec.name == "sex" and delivery.cin_gender_codes:
            return GENDER_CODES.get(value, value)
        return value.lower() if delivery.lower_codes else value
    if spec.kind is Kind.NHS_NUMBER and delivery.spaced_nhs_numbers and len(value) == 10:
        return identifiers.space_nhs_number(value)
    if spec.kind is Kind.POSTCODE and delivery.compact_postcodes:
        return value.replace(" ", "")
    return value


# --- XLSX ------------------------------------------------------------------------------


def _write_workbook(
    la: LaRecords, delivery: Delivery, folder: Path
) -> tuple[DropFile, list[PlantedIssue]]:
    name = _workbook_name(la.la_name, delivery.file_naming)
    path = _relative(folder, name)
    sheets = [SHEET_NAMES[dataset] for dataset in delivery.workbook_datasets]
    sheets.insert(0 if delivery.notes_sheet_first else len(sheets), NOTES_SHEET)
    issues: list[PlantedIssue] = []
    with xlsxwriter.Workbook(str(folder / name)) as workbook:
        workbook.set_properties({"created": WORKBOOK_CREATED, "author": "Early help data team"})
        formats = _Formats(workbook)
        for sheet in sheets:
            worksheet = workbook.add_worksheet(sheet)
            if sheet == NOTES_SHEET:
                _write_notes(worksheet, formats)
                continue
            dataset = next(d for d, title in SHEET_NAMES.items() if title == sheet)
            _write_sheet(worksheet, formats, la, dataset, delivery)
            issues += _planted(la, path, dataset, sheet, la.rows(dataset))
    drop_file = DropFile(
        la.la_code,
        path,
        delivery.workbook_datasets,
        {dataset: len(la.rows(dataset)) for dataset in delivery.workbook_datasets},
        {dataset: SHEET_NAMES[dataset] for dataset in delivery.workbook_datasets},
    )
    return drop_file, issues


def _workbook_name(la_name: str, naming: int) -> str:
    if naming == 1:
        return f"EH_Return_{EXTRACT_STAMP}.xlsx"
    if naming == 2:
        return f"{la_name} early help return Q4 2025.xlsx"
    return "early_help_return.xlsx"


class _Formats:
    def __init__(self, workbook: Any) -> None:
        self.header = workbook.add_format({"bold": True})
        self.date = workbook.add_format({"num_format": "dd/mm/yyyy"})


def _write_notes(worksheet: Any, formats: _Formats) -> None:
    worksheet.write_string(0, 0, NOTES_SHEET, formats.header)
    for index, line in enumerate(lexicon.WORKBOOK_NOTES, start=1):
        worksheet.write_string(index, 0, line)


def _write_sheet(
    worksheet: Any, formats: _Formats, la: LaRecords, dataset: str, delivery: Delivery
) -> None:
    columns = _columns(dataset, delivery)
    for index, column in enumerate(columns):
        worksheet.write_string(0, index, column.header, formats.header)
    for row_index, row in enumerate(la.rows(dataset), start=1):
        for index, column in enumerate(columns):
            value = row.values.get(column.spec.name) if column.spec else None
            if _is_excel_date(column, value, delivery):
                assert isinstance(value, date)
                worksheet.write_datetime(
                    row_index, index, datetime.combine(value, time()), formats.date
                )
                continue
            text = _cell_text(column, row, la.la_code, delivery)
            if text:
                worksheet.write_string(row_index, index, text)


def _is_excel_date(column: Column, value: Cell, delivery: Delivery) -> bool:
    return (
        column.spec is not None
        and column.spec.kind is Kind.DATE
        and column.spec.name in delivery.excel_date_fields
        and isinstance(value, date)
    )
