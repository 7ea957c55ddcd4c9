"""Typing the text cells of a raw table, with vectorised polars expressions only.

The typed frame is the contract the validation step's pandera models check:

- `row_number` Int64; `la_code` String when the file has the column;
- every stored (not dropped) field of the dataset, in declared order, typed by its kind: String
  for identifiers, NHS numbers, UPNs, postcodes, text, codes and code lists; Date; Boolean for
  flags; Int64; Float64. A field the file does not carry is an all-null column of its type.

A cell that cannot be typed becomes null and gets one issue (row number, canonical column, rule;
never the value). Blank required cells, code lists, ranges and cross-field rules are checked by
validation, not here: an unknown code is kept, normalised, so that validation can report it.

Decisions where the specification is silent:

- Dates: `YYYY-MM-DD` (month and day may have one digit) and `D/M/YYYY` in UK order, either
  followed by a time (`T` or a space, then `hh:mm[:ss[.fff]]`, optional am/pm and zone) that is
  dropped. A two-digit year is DATE_AMBIGUOUS. Other separators (`01-02-2024`, `01.02.2024`)
  are DATE_FORMAT: the specification names only these two forms.
- Excel serial numbers (tables read from XLSX only) use the 1900 date system, with Lotus's
  phantom 29 February 1900 (serial 60) rejected and serials 1-59 mapped to January and February
  1900 as Excel shows them. A fractional (time) part is dropped. Workbooks saved with the 1904
  date system store date *cells* correctly (calamine converts them); only bare numbers typed into
  a date column are read as 1900-system serials.
- Dates must fall between 1900-01-01 and 2099-12-31 (DATE_OUT_OF_BOUNDS): every date of the
  trial is a life or a service event of this century or the last, Excel's calendar starts in
  1900, and a year such as 0000 is refused by PostgreSQL but kept by DuckDB. A far-future
  service date would also become the return's newest and hold every later return.
- A text cell of a stored field holding a control character (U+0000-U+001F but tab, line feed
  and carriage return, and U+007F) is CONTROL_CHARACTER, and null: PostgreSQL's text type
  refuses NUL, which DuckDB stores, and the two warehouses must hold the same rows. The cells
  of dropped fields are never parsed or stored, so they are not checked.
- Integers accept an optional sign and a zero fraction (`3.0`); numbers accept decimals and
  exponents but not `inf` or `nan`. Thousands separators are not accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import polars as pl

from schemas.contract import LA_CODE_COLUMN, Field, Kind, Treatment
from schemas.outcome import ROW_NUMBER, RawTable, issue_frame
from schemas.rules import (
    CONTROL_CHARACTER,
    DATE_AMBIGUOUS,
    DATE_FORMAT,
    DATE_OUT_OF_BOUNDS,
    FLAG_FORMAT,
    INTEGER_FORMAT,
    MAX_LENGTH,
    NUMBER_FORMAT,
    Severity,
)

DTYPES: dict[Kind, pl.DataType] = {
    Kind.IDENTIFIER: pl.String(),
    Kind.TEXT: pl.String(),
    Kind.CODE: pl.String(),
    Kind.CODES: pl.String(),
    Kind.DATE: pl.Date(),
    Kind.FLAG: pl.Boolean(),
    Kind.INTEGER: pl.Int64(),
    Kind.NUMBER: pl.Float64(),
    Kind.NHS_NUMBER: pl.String(),
    Kind.UPN: pl.String(),
    Kind.POSTCODE: pl.String(),
}

FLAG_VALUES = {"Y": True, "YES": True, "TRUE": True, "1": True}
FLAG_VALUES |= {"N": False, "NO": False, "FALSE": False, "0": False}

# [0-9], never \d: the regex engine's \d also matches other scripts' digits.
_TIME = (
    r"(?:[T ]\s*[0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?"
    r"\s*(?:[AaPp]\.?[Mm]\.?)?\s*(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)
_ISO_DATE = rf"^[0-9]{{4}}-[0-9]{{1,2}}-[0-9]{{1,2}}{_TIME}$"
_UK_DATE = rf"^[0-9]{{1,2}}/[0-9]{{1,2}}/[0-9]{{4}}{_TIME}$"
_TWO_DIGIT_YEAR = rf"^[0-9]{{1,2}}/[0-9]{{1,2}}/[0-9]{{2}}{_TIME}$"
_SERIAL = r"^[0-9]+(?:\.[0-9]+)?$"
_INTEGER = r"^[+-]?[0-9]+(?:\.0*)?$"
_NUMBER = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"

# Excel's 1900 date system: serial 25569 is 1970-01-01 from 1 March 1900 (serial 61) on; below
# serial 60 (the phantom 29 February 1900) every date is one day later than that count says.
_SERIAL_UNIX_EPOCH = 25569
_PHANTOM_LEAP_DAY = 60
_LAST_SERIAL = 2958465  # 9999-12-31
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2099, 12, 31)

# Control characters PostgreSQL cannot store (NUL) or that no cell should hold; tab, line feed
# and carriage return are text (a line break typed in a spreadsheet cell).
CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_CONTROL = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F]"


@dataclass(frozen=True)
class _Parsed:
    """A typed column and the checks that flag its cells which could not be typed."""

    value: pl.Expr
    checks: tuple[tuple[str, pl.Expr], ...] = ()


def parse_table(table: RawTable, *, today: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The typed frame and its issues (ISSUE_SCHEMA, severity "error") for one raw table.

    `today` is part of the interface for rules that depend on the date; typing does not use it
    (not-in-future and range rules belong to validation).
    """
    del today
    present = set(table.frame.columns)
    parsed: dict[str, _Parsed] = {}
    if LA_CODE_COLUMN in present:
        parsed[LA_CODE_COLUMN] = _Parsed(pl.col(LA_CODE_COLUMN))
    for field in table.dataset.stored_fields:
        if field.name in present:
            parsed[field.name] = _parse_field(field, from_excel=table.from_excel)
        else:
            parsed[field.name] = _Parsed(pl.lit(None, dtype=DTYPES[field.kind]).alias(field.name))
    flags = [
        (name, rule, check.fill_null(False).alias(f"__check_{i}_{j}"))
        for i, (name, column) in enumerate(parsed.items())
        for j, (rule, check) in enumerate(column.checks)
    ]
    texts = [name for name in parsed if name in present]
    controls = {
        name: f"__control_{i}"
        for i, name in enumerate(texts)
        if name != LA_CODE_COLUMN and _may_hold_control(table.frame.get_column(name))
    }
    wide = (
        table.frame.lazy()
        .select(pl.col(ROW_NUMBER).cast(pl.Int64), pl.col(texts).cast(pl.String).str.strip_chars())
        .with_columns(pl.col(name).str.contains(_CONTROL).alias(c) for name, c in controls.items())
        .with_columns(_blanked(name, controls.get(name)) for name in texts)
        .select(
            ROW_NUMBER,
            *(column.value.alias(name) for name, column in parsed.items()),
            *(flag for _, _, flag in flags),
            *(pl.col(c).fill_null(False) for c in controls.values()),
        )
        .collect()
    )
    typed = wide.select(ROW_NUMBER, *parsed)
    raised = [(name, rule, flag.meta.output_name()) for name, rule, flag in flags]
    raised += [(name, CONTROL_CHARACTER, c) for name, c in controls.items()]
    return typed, _issues(wide, raised)


def _may_hold_control(column: pl.Series) -> bool:
    """Could a cell of this raw column hold a control character? One pass over the column's
    bytes, several times quicker than a regular expression on each cell; a column it finds
    one in (rare) is then checked cell by cell."""
    values = column.cast(pl.String).to_arrow().buffers()[2]
    if values is None:
        return False
    data = values.to_pybytes()
    return len(data.translate(None, CONTROL_BYTES)) != len(data)


def _blanked(name: str, control: str | None) -> pl.Expr:
    """The stripped cell, or null when it is empty or holds a control character."""
    text = pl.col(name)
    keep = text.str.len_bytes() > 0
    if control is not None:
        keep = keep & ~pl.col(control)
    return pl.when(keep).then(text).alias(name)


def _issues(wide: pl.DataFrame, flags: list[tuple[str, str, str]]) -> pl.DataFrame:
    # One pass finds the flags raised at all (usually few); only those are filtered, and only
    # the row number is taken before filtering (filtering the wide frame copies every column).
    raised = wide.select(pl.col(flag).any() for _, _, flag in flags).row(0) if flags else ()
    found = [
        wide.select(ROW_NUMBER, flag)
        .filter(pl.col(flag))
        .select(
            pl.col(ROW_NUMBER),
            pl.lit(column, dtype=pl.String).alias("column"),
            pl.lit(rule, dtype=pl.String).alias("rule"),
            pl.lit(Severity.ERROR.value, dtype=pl.String).alias("severity"),
        )
        for (column, rule, flag), any_raised in zip(flags, raised, strict=True)
        if any_raised
    ]
    return issue_frame(found).sort(ROW_NUMBER, maintain_order=True)


def _parse_field(field: Field, *, from_excel: bool) -> _Parsed:
    if field.kind is Kind.DATE:
        return _date(field.name, from_excel=from_excel)
    parser = _PARSERS[field.kind]
    return parser(field)


def _bounded_text(field: Field) -> _Parsed:
    value = pl.col(field.name)
    if field.max_length is None:
        return _Parsed(value)
    return _Parsed(value, ((MAX_LENGTH, value.str.len_chars() > field.max_length),))


def _raw_text(field: Field) -> _Parsed:
    return _Parsed(pl.col(field.name))


def _code(field: Field) -> _Parsed:
    value = pl.col(field.name).str.to_uppercase()
    if field.code_map:
        value = value.replace(field.code_map)
    return _Parsed(value)


def _codes(field: Field) -> _Parsed:
    """`;`-separated codes: each item stripped and upper-cased (and mapped), blank items
    dropped, rejoined with `;`; null when no item is left."""
    if field.code_map:
        joined = _code_items_rejoined(pl.col(field.name), field.code_map)
    else:
        joined = _code_list_tidied(pl.col(field.name))
    return _Parsed(pl.when(joined.str.len_bytes() > 0).then(joined))


def _code_items_rejoined(text: pl.Expr, code_map: dict[str, str]) -> pl.Expr:
    """The definition, item by item (lists are slower than `_code_list_tidied`, but each
    item must be looked up when codes are mapped)."""
    item = pl.element().str.strip_chars().str.to_uppercase().replace(code_map)
    return (
        text.str.split(";")
        .list.eval(item)
        .list.eval(pl.element().filter(pl.element().str.len_bytes() > 0))
        .list.join(";")
    )


def _code_list_tidied(text: pl.Expr) -> pl.Expr:
    """The same as `_code_items_rejoined` with no map, on the whole text: white space around
    and runs of separators become one `;`, then separators and white space at either end go.
    (`\\s` and `strip_chars` both mean Unicode White_Space.)"""
    return (
        text.str.to_uppercase()
        .str.replace_all(r"\s*(?:;\s*)+", ";")
        .str.replace_all(r"^[\s;]+|[\s;]+$", "")
    )


def _flag(field: Field) -> _Parsed:
    text = pl.col(field.name)
    value = text.str.to_uppercase().replace_strict(
        FLAG_VALUES, default=None, return_dtype=pl.Boolean
    )
    return _Parsed(value, ((FLAG_FORMAT, text.is_not_null() & value.is_null()),))


def _integer(field: Field) -> _Parsed:
    text = pl.col(field.name)
    digits = text.str.replace(r"\.0*$", "")
    value = pl.when(text.str.contains(_INTEGER)).then(digits.cast(pl.Int64, strict=False))
    return _Parsed(value, ((INTEGER_FORMAT, text.is_not_null() & value.is_null()),))


def _number(field: Field) -> _Parsed:
    text = pl.col(field.name)
    number = text.cast(pl.Float64, strict=False)
    value = pl.when(text.str.contains(_NUMBER) & number.is_finite()).then(number)
    return _Parsed(value, ((NUMBER_FORMAT, text.is_not_null() & value.is_null()),))


def _date(name: str, *, from_excel: bool) -> _Parsed:
    text = pl.col(name)
    # The shape is checked first because chrono's parser is lenient (signs, any digit count).
    day = text.str.replace(r"[T ].*$", "")
    candidates: list[pl.Expr] = [
        pl.when(text.str.contains(_ISO_DATE)).then(day.str.to_date("%Y-%m-%d", strict=False)),
        pl.when(text.str.contains(_UK_DATE)).then(day.str.to_date("%d/%m/%Y", strict=False)),
    ]
    if from_excel:
        candidates.append(_date_from_serial(text))
    read = pl.coalesce(candidates)
    in_bounds = read.is_between(pl.lit(EARLIEST_DATE), pl.lit(LATEST_DATE))
    unreadable = text.is_not_null() & read.is_null()
    ambiguous = text.str.contains(_TWO_DIGIT_YEAR)
    return _Parsed(
        pl.when(in_bounds).then(read),
        (
            (DATE_AMBIGUOUS, unreadable & ambiguous),
            (DATE_FORMAT, unreadable & ~ambiguous),
            (DATE_OUT_OF_BOUNDS, read.is_not_null() & ~in_bounds),
        ),
    )


def _date_from_serial(text: pl.Expr) -> pl.Expr:
    serial = text.cast(pl.Float64, strict=False).floor()
    is_serial = text.str.contains(_SERIAL) & serial.is_between(1, _LAST_SERIAL)
    days = (
        pl.when(serial > _PHANTOM_LEAP_DAY)
        .then(serial - _SERIAL_UNIX_EPOCH)
        .when(serial < _PHANTOM_LEAP_DAY)
        .then(serial - _SERIAL_UNIX_EPOCH + 1)
    )
    return pl.when(is_serial).then(days.cast(pl.Int32, strict=False).cast(pl.Date))


_PARSERS: dict[Kind, Callable[[Field], _Parsed]] = {
    Kind.IDENTIFIER: _bounded_text,
    Kind.TEXT: _bounded_text,
    Kind.CODE: _code,
    Kind.CODES: _codes,
    Kind.FLAG: _flag,
    Kind.INTEGER: _integer,
    Kind.NUMBER: _number,
    Kind.NHS_NUMBER: _raw_text,
    Kind.UPN: _raw_text,
    Kind.POSTCODE: _raw_text,
}


def typed_schema(fields: tuple[Field, ...], *, with_la_code: bool) -> dict[str, pl.DataType]:
    """The typed frame's schema for these (stored) fields."""
    schema: dict[str, pl.DataType] = {ROW_NUMBER: pl.Int64()}
    if with_la_code:
        schema[LA_CODE_COLUMN] = pl.String()
    schema |= {f.name: DTYPES[f.kind] for f in fields if f.treatment is not Treatment.DROP}
    return schema
