"""Rejected rows keep no value a rule refused, and both warehouses load the same hostile cells.

Returns with canaries planted in cells that break a rule (a 100,000-character team name, a
phone number in `fte`, a date outside the trial window, a code that is a name, dropped
names on a rejected row, free text on a rejected row) go through the pipeline whole and a few
rows at a time, on DuckDB and on PostgreSQL; then every column of every table is searched for
the canaries, and so are the LAs' reports. The same returns carry NUL and other control
characters (an XLSX text cell can hold a NUL; a CSV with one is not text and is refused whole)
and dates PostgreSQL cannot hold (`0000-01-01`) or the trial cannot use: both warehouses must
reject the same rows by the same rules, and the run must finish with a report for every file.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import xlsxwriter  # type: ignore[import-untyped]
from e2e import postgres_available, postgres_database, require_postgres

from ingest.processing import Services, SubmissionStatus, process_received, take_from_drop
from ingest.storage.drop import REPORTS_FOLDER, LocalFolderDrop
from ingest.storage.landing import LandingStore
from ingest.warehouse import SCHEMAS, Warehouse, duckdb_url
from pseudonymise.keys import new_key_text, parse_key_text
from pseudonymise.tokens import Tokeniser
from schemas.rules import (
    CONTROL_CHARACTER,
    DATE_OUT_OF_BOUNDS,
    MAX_LENGTH,
    OUT_OF_RANGE,
    RULE_TEXT,
)

pytestmark = pytest.mark.slow

KEY = parse_key_text(new_key_text())
LANDING_KEY = parse_key_text(new_key_text())
FIRST_RECEIVED = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)

KEYWORKER_HEADER = [
    *("keyworker_id", "first_name", "last_name", "email", "phone", "team", "role", "fte"),
    *("start_date", "end_date", "social_work_qualified", "systemic_training"),
]
ACTIVITY_HEADER = [
    "activity_id",
    "keyworker_id",
    "activity_type",
    "activity_date",
    "duration_minutes",
]

# Each canary is found nowhere but where it was planted.
LONG_TEAM = "CANARYLONGTEAM"
SHIFTED_TEAM = "CANARYSHIFTEDTEAM"
CONTROL_TEAM = "CANARYCONTROLTEAM"
NAME = "CANARYFIRSTNAME"
CODE = "CANARYROLECODE"
PHONE_IN_FTE = "7700900123"
DATE_OUT_OF_WINDOW = "2031-07-13"
MINUTES = "9876543"
CANARIES = (
    LONG_TEAM,
    SHIFTED_TEAM,
    CONTROL_TEAM,
    NAME,
    CODE,
    PHONE_IN_FTE,
    DATE_OUT_OF_WINDOW,
    MINUTES,
)


def _keyworker(number: int, **cells: str) -> list[str]:
    row = dict.fromkeys(KEYWORKER_HEADER, "")
    row |= {"keyworker_id": f"K{number:03d}", "first_name": "Ann", "team": "North"}
    row |= {"role": "KEYWORKER", "fte": "0.5", "start_date": "2024-10-01"}
    row |= {"social_work_qualified": "Y", "systemic_training": "NONE"}
    return list((row | cells).values())


def _keyworker_rows(control: str) -> list[list[str]]:
    """Clean rows, then rows that break a rule with a canary where the value was refused."""
    return [
        *(_keyworker(n) for n in range(1, 7)),
        _keyworker(10, team=LONG_TEAM + "x" * 100_000),  # max_length
        _keyworker(11, first_name=NAME, team=SHIFTED_TEAM, role=CODE, fte=PHONE_IN_FTE),
        _keyworker(12, team=f"{CONTROL_TEAM}{control}East"),  # control_character
        _keyworker(13, keyworker_id=f"K{control}13"),  # control_character in an identifier
        _keyworker(14, start_date="0000-01-01"),  # PostgreSQL has no year 0
        _keyworker(15, start_date="2024-10-01", end_date="2100-01-01"),
        _keyworker(16, start_date="01/01/1899"),
    ]


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows])
    return out.getvalue().encode()


def _xlsx(header: list[str], rows: list[list[str]]) -> bytes:
    buffer = io.BytesIO()
    with xlsxwriter.Workbook(buffer, {"in_memory": True}) as book:
        sheet = book.add_worksheet("keyworkers")
        for r, row in enumerate([header, *rows]):
            for c, value in enumerate(row):
                if value:
                    sheet.write_string(r, c, value)
    return buffer.getvalue()


def _activity_csv() -> bytes:
    rows = [[f"A{n}", "K001", "GENOGRAM", "2025-01-10", "60"] for n in range(1, 6)]  # clean rows
    rows.append(["A10", "K001", "GENOGRAM", DATE_OUT_OF_WINDOW, "60"])  # out_of_range
    rows.append(["A11", "K001", "GENOGRAM", "2025-01-10", MINUTES])  # out_of_range
    return _csv(ACTIVITY_HEADER, rows)


@functools.cache
def _files() -> list[tuple[str, str, bytes]]:
    """(LA, file name, content): a CSV, its XLSX twin with a NUL, an activity return, and the
    CSV with a NUL (not CSV text: rejected whole, on both warehouses alike)."""
    return [
        ("901", "keyworkers.csv", _csv(KEYWORKER_HEADER, _keyworker_rows("\x1b"))),
        ("902", "keyworkers.xlsx", _xlsx(KEYWORKER_HEADER, _keyworker_rows("\x00"))),
        ("901", "activity.csv", _activity_csv()),
        ("903", "nul.csv", _csv(KEYWORKER_HEADER, _keyworker_rows("\x00"))),
    ]


@dataclass(frozen=True)
class Outcome:
    by_file: dict[str, tuple[SubmissionStatus, int, int, dict[str, int]]]
    reports: dict[str, str]
    text: dict[str, str]  # every table of the warehouse, every cell as text


def _process(base: Path, url: str, **chunking: int) -> Outcome:
    drop_root = base / "drop"
    for la_code, name, content in _files():
        (drop_root / la_code).mkdir(parents=True, exist_ok=True)
        (drop_root / la_code / name).write_bytes(content)
    drop = LocalFolderDrop(drop_root, KEY)
    warehouse = Warehouse(url)
    ticks = itertools.count()
    services = Services(
        landing=LandingStore(base / "landing", LANDING_KEY),
        warehouse=warehouse,
        tokeniser=Tokeniser(KEY),
        drop=drop,
        clock=lambda: FIRST_RECEIVED + timedelta(minutes=next(ticks)),
        **chunking,  # type: ignore[arg-type]
    )
    by_file = {}
    try:
        for la_code, name, _ in _files():
            [listed] = [o for o in drop.list_inbox(la_code) if o.name == name]
            received = take_from_drop(services, la_code, listed.fingerprint)
            assert received is not None
            result = process_received(services, received)
            by_file[name] = (
                result.status,
                sum(d.rows_loaded for d in result.datasets),
                sum(d.rows_rejected for d in result.datasets),
                {r: n for d in result.datasets for r, n in d.rejected_by_rule.items()},
            )
        text = _every_cell(warehouse)
    finally:
        warehouse.dispose()
    reports = {
        str(p.relative_to(drop_root)): p.read_text()
        for p in drop_root.glob(f"*/{REPORTS_FOLDER}/*")
    }
    return Outcome(by_file, reports, text)


def _every_cell(warehouse: Warehouse) -> dict[str, str]:
    """Each base table of the warehouse's schemas, every cell cast to text by the database."""
    columns = sa.text(
        "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_catalog, table_schema, table_name) "
        "WHERE t.table_type = 'BASE TABLE' ORDER BY 1, 2, c.ordinal_position"
    )
    found: dict[str, str] = {}
    with warehouse.engine.connect() as conn:
        tables: dict[tuple[str, str], list[str]] = {}
        for schema, table, column in conn.execute(columns).all():
            if schema in SCHEMAS:
                tables.setdefault((schema, table), []).append(column)
        assert ("ops", "quarantine_keyworkers") in tables
        for (schema, table), names in tables.items():
            cells = ", ".join(f'CAST("{name}" AS VARCHAR)' for name in names)
            rows = conn.execute(sa.text(f'SELECT {cells} FROM "{schema}"."{table}"'))  # noqa: S608
            found[f"{schema}.{table}"] = "\n".join("|".join(map(str, row)) for row in rows)
    return found


class Outcomes:
    """The returns processed each way (engine, whole or chunked), each once, when first asked."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._factory = tmp_path_factory
        self._done: dict[str, Outcome] = {}
        self.postgres_url: str | None = None  # a database of the module's own, when running

    def __getitem__(self, way: str) -> Outcome:
        if way not in self._done:
            self._done[way] = self._process(way)
        return self._done[way]

    def _process(self, way: str) -> Outcome:
        engine, how = way.split()
        base = self._factory.mktemp(f"{engine}-{how}")
        if engine == "duckdb":
            url = duckdb_url(base / "warehouse.duckdb")
        else:
            require_postgres()
            assert self.postgres_url is not None
            url = self.postgres_url
            _empty_postgres(url)
        chunking = {"chunked_from_bytes": 0, "chunk_rows": 2} if how == "chunked" else {}
        return _process(base, url, **chunking)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcomes]:
    """The returns on each warehouse, checked whole and a few rows at a time."""
    found = Outcomes(tmp_path_factory)
    with contextlib.ExitStack() as stack:
        if postgres_available():
            found.postgres_url = stack.enter_context(postgres_database("trial_quarantine"))
        yield found


def _empty_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for schema in SCHEMAS:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


WAYS = ("duckdb whole", "duckdb chunked", "postgresql whole", "postgresql chunked")


@pytest.mark.parametrize("way", WAYS)
def test_no_refused_value_is_stored_anywhere(outcomes: Outcomes, way: str) -> None:
    outcome = outcomes[way]
    holding = {
        table: [c for c in CANARIES if c.lower() in text.lower()]
        for table, text in outcome.text.items()
    }
    assert {table: hits for table, hits in holding.items() if hits} == {}
    for name, report in outcome.reports.items():
        assert [c for c in CANARIES if c.lower() in report.lower()] == [], name


@pytest.mark.parametrize("way", WAYS)
def test_the_rejected_rows_are_kept_with_their_rules(outcomes: Outcomes, way: str) -> None:
    quarantine = outcomes[way].text["ops.quarantine_keyworkers"].splitlines()
    assert len(quarantine) == 2 * 7  # seven rejected rows in each LA's return
    rules = outcomes[way].text["ops.quarantine_keyworkers"]
    for rule in (MAX_LENGTH, CONTROL_CHARACTER, DATE_OUT_OF_BOUNDS, OUT_OF_RANGE):
        assert rule in rules


@pytest.mark.parametrize("way", WAYS)
def test_hostile_cells_are_row_errors_on_both_warehouses(outcomes: Outcomes, way: str) -> None:
    expected_rules = {
        "code_list": 1,
        CONTROL_CHARACTER: 2,
        DATE_OUT_OF_BOUNDS: 3,
        MAX_LENGTH: 1,
        OUT_OF_RANGE: 1,
    }
    for name in ("keyworkers.csv", "keyworkers.xlsx"):
        status, loaded, rejected, by_rule = outcomes[way].by_file[name]
        assert (status, loaded, rejected) == (SubmissionStatus.ACCEPTED, 6, 7), name
        assert by_rule == expected_rules, name
    assert outcomes[way].by_file["activity.csv"][:3] == (SubmissionStatus.ACCEPTED, 5, 2)
    assert outcomes[way].by_file["nul.csv"] == (SubmissionStatus.REJECTED, 0, 0, {})
    reports = [r for r in outcomes[way].reports.values() if "keyworkers" in r]
    assert len(reports) == 2  # the CSV's and the workbook's
    for report in reports:
        for rule in (CONTROL_CHARACTER, DATE_OUT_OF_BOUNDS):
            assert f"{rule} [error]: {RULE_TEXT[rule]}" in report, rule
    assert len(outcomes[way].reports) == len(_files())


def test_duckdb_and_postgresql_agree(outcomes: Outcomes) -> None:
    first = outcomes[WAYS[0]]
    for way in WAYS[1:]:
        assert outcomes[way].by_file == first.by_file, way
        assert outcomes[way].reports == first.reports, way
