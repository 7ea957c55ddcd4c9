"""A table checked a slice at a time gives exactly what `check_submission` gives for it whole,
and loads into the warehouse exactly as `load_return` loads the whole outcome."""

from __future__ import annotations

import contextlib
import csv
import io
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
import sqlalchemy as sa
from e2e import postgres_database, require_postgres
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ingest.warehouse.spool
from ingest.warehouse import SPOOL_MARK, ChunkTotals, LoadResult, Warehouse, WarehouseLoadError
from pseudonymise.identifiers import nhs_check_digit, upn_check_letter
from pseudonymise.keys import TrialKey
from pseudonymise.tokens import Tokeniser
from schemas import rules
from schemas.chunked import (
    ChunkedSubmission,
    check_submission_chunks,
    collect_submission,
    in_order,
    tables_of,
)
from schemas.outcome import SubmissionOutcome
from schemas.reader.csv_slices import (
    WholeFileNeeded,
    _cut_after,
    csv_layout,
    csv_pieces,
    csv_slices,
)
from schemas.submission import check_submission

# The tokeniser as the service builds it (the native HMAC for every column).
TOKENISER = Tokeniser(TrialKey(b"chunk-tests-key-0123456789abcdef-xyz"))
LA = "123"
TODAY = date(2026, 3, 1)
NHS = "9434765919"
UPN = upn_check_letter("801200005001") + "801200005001"
assert nhs_check_digit(NHS[:9]) == int(NHS[9])

PEOPLE_HEADER = [
    "person_id", "family_id", "role", "first_name", "address_line_1", "postcode",
    "date_of_birth", "sex", "ethnicity", "nhs_number", "upn", "upn_unknown", "disability",
    "la_code",
]  # fmt: skip
# One good row and one broken field per kind of problem (first entry: no change).
BREAKS: list[dict[str, str]] = [
    {},
    {"nhs_number": "9434765918"},  # wrong check digit: a warning
    {"upn": "A" + UPN[1:]},  # wrong check letter: a warning
    {"sex": ""},  # required
    {"role": "SIBLING"},  # not a code
    {"date_of_birth": "32/01/2020"},  # not a date
    {"date_of_birth": "2099-01-01"},  # in the future
    {"person_id": "X" * 40},  # too long
    {"postcode": "NOT KNOWN"},  # a warning
    {"disability": "LD;NOPE"},  # not a code list
    {"upn_unknown": "UN1"},  # only when the UPN is blank
    {"first_name": 'Ann "Nan"\nSmith, Jr'},  # quotes, a comma and a line break in a dropped cell
    {"person_id": " p 1 ", "family_id": ""},  # the same person as P1 once normalised
    {"la_code": ""},
]


def person_row(number: int, brk: int, *, person: int | None = None) -> dict[str, str]:
    row = {
        "person_id": f"P{number if person is None else person}",
        "family_id": f"F{number // 3}",
        "role": "CHILD" if number % 2 else "PARENT_CARER",
        "first_name": "Alice",
        "address_line_1": "1 High Street",
        "postcode": "SW1A 1AA",
        "date_of_birth": "2015-05-17" if number % 2 else "1980-02-29",
        "sex": "F",
        "ethnicity": "WBRI",
        "nhs_number": NHS,
        "upn": UPN,
        "upn_unknown": "",
        "disability": "NONE",
        "la_code": LA,
    }
    return row | BREAKS[brk]


def to_csv(
    rows: list[dict[str, str]], *, blank_lines: frozenset[int] = frozenset(), crlf: bool = False
) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=PEOPLE_HEADER, lineterminator="\r\n" if crlf else "\n")
    writer.writeheader()
    for index, row in enumerate(rows):
        if index in blank_lines:
            out.write(",,\n" if index % 2 else "\n")
        writer.writerow(row)
    return out.getvalue().encode()


def whole(content: bytes, la_code: str = LA) -> SubmissionOutcome:
    return check_submission(content, la_code=la_code, tokeniser=TOKENISER, today=TODAY)


def chunked(
    content: bytes, chunk_rows: int, la_code: str = LA, *, workers: int = 2
) -> ChunkedSubmission:
    return check_submission_chunks(
        content,
        la_code=la_code,
        tokeniser=TOKENISER,
        today=TODAY,
        chunk_rows=chunk_rows,
        min_bytes=0,
        workers=workers,
    )


def assert_same(expected: SubmissionOutcome, actual: SubmissionOutcome) -> None:
    assert actual.file_issues == expected.file_issues
    assert actual.key_id == expected.key_id and actual.la_code == expected.la_code
    assert len(actual.tables) == len(expected.tables)
    for got, want in zip(actual.tables, expected.tables, strict=True):
        assert (got.dataset, got.source) == (want.dataset, want.source)
        assert got.rows_received == want.rows_received
        assert got.file_issues == want.file_issues
        for name in ("clean", "rejected", "issues"):
            frame, wanted = getattr(got, name), getattr(want, name)
            assert frame.schema == wanted.schema, name
            assert frame.equals(wanted), name


rows_strategy = st.lists(
    st.tuples(st.integers(0, 12), st.integers(0, len(BREAKS) - 1), st.booleans()),
    min_size=1,
    max_size=30,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=rows_strategy,
    chunk_rows=st.integers(1, 7),
    blank_lines=st.sets(st.integers(0, 30), max_size=4),
    crlf=st.booleans(),
    workers=st.integers(1, 3),
)
def test_chunks_put_together_equal_the_whole_file(
    spec: list[tuple[int, int, bool]],
    chunk_rows: int,
    blank_lines: set[int],
    crlf: bool,
    workers: int,
) -> None:
    # Person numbers repeat (small range), so keys are duplicated across chunks.
    rows = [person_row(i, brk, person=p) for i, (p, brk, _) in enumerate(spec)]
    content = to_csv(rows, blank_lines=frozenset(blank_lines), crlf=crlf)
    submission = chunked(content, chunk_rows, workers=workers)
    assert_same(whole(content), collect_submission(submission))


class Broken(Exception):
    pass


@settings(max_examples=50, deadline=None)
@given(
    items=st.lists(st.integers(0, 9), max_size=12),
    workers=st.integers(1, 4),
    broken_at=st.none() | st.integers(0, 11),
)
def test_work_in_threads_comes_back_in_order(
    items: list[int], workers: int, broken_at: int | None
) -> None:
    taken: list[int] = []  # how many items had been taken when each result was handed on
    started = 0

    def source() -> Iterator[int]:
        nonlocal started
        for item in items:
            started += 1
            yield item

    def work(position_and_item: tuple[int, int]) -> int:
        position, item = position_and_item
        time.sleep(item / 2000)  # later items often finish first
        if position == broken_at:
            raise Broken
        return item * 10 + position

    results: list[int] = []
    expected = [item * 10 + i for i, item in enumerate(items)]
    with contextlib.suppress(Broken):
        for result in in_order(work, enumerate(source()), workers):
            taken.append(started)
            results.append(result)
    if broken_at is not None and broken_at < len(items):
        expected = expected[:broken_at]
    assert results == expected
    # Never more than `workers` items are held ahead of the one handed on.
    assert all(count <= position + workers for position, count in enumerate(taken))


def test_a_key_repeated_in_another_chunk_rejects_both_rows() -> None:
    rows = [person_row(i, 0) for i in range(1, 9)] + [person_row(9, 0, person=2)]
    outcome = collect_submission(chunked(to_csv(rows), 2))
    table = outcome.tables[0]
    repeated = table.issues.filter(pl.col("rule") == rules.DUPLICATE_KEY)
    assert repeated["row_number"].to_list() == [3, 10]
    assert_same(whole(to_csv(rows)), outcome)


def test_withdrawals_with_a_two_part_key() -> None:
    content = (
        b"person_id,family_id,withdrawal_date\n"
        b"P1,F1,2025-01-01\n"
        b"P2,,2025-01-01\n"
        b"P3,F1,2025-01-01\n"
        b"P2,,2025-02-01\n"
        b"P1,F2,2025-01-01\n"
        b",,2025-01-01\n"
        b",F1,2025-01-01\n"
    )
    assert_same(whole(content), collect_submission(chunked(content, 1)))


@pytest.mark.parametrize("la_code", [LA, "456"])
def test_the_la_code_check_covers_every_chunk(la_code: str) -> None:
    rows = [person_row(i, 0) for i in range(6)]
    rows[5]["la_code"] = "456"
    content = to_csv(rows)
    assert_same(whole(content, la_code), collect_submission(chunked(content, 2, la_code)))


def test_a_header_with_no_data_rows_and_a_blank_headed_column() -> None:
    header_only = b"person_id,role,sex,\n,,,\n\n"
    assert_same(whole(header_only), collect_submission(chunked(header_only, 1)))
    with_data = b"person_id,role,sex,,first_name\nP1,CHILD,F,x,A\nP2,CHILD,F,,B\n"
    assert_same(whole(with_data), collect_submission(chunked(with_data, 1)))


def test_files_the_slices_cannot_read_are_checked_whole() -> None:
    for content in (b"", b"\xff\xfe\x00", b"title\nperson_id,role\nP1,CHILD\n"):
        assert_same(whole(content), collect_submission(chunked(content, 1)))


def test_a_wider_record_further_down_needs_the_whole_file() -> None:
    rows = [person_row(i, 0) for i in range(1100)]  # past the records sampled for the header
    content = to_csv(rows) + b"P9,F9,CHILD,,,,,,,,,,,,extra\n"
    with pytest.raises(WholeFileNeeded):
        collect_submission(chunked(content, 500))
    assert whole(content).file_issues[0].rule == rules.UNREADABLE_FILE


def test_text_that_is_not_utf8_further_down_needs_the_whole_file() -> None:
    rows = [person_row(i, 0) for i in range(1100)]  # past the records sampled for the header
    rows.append(person_row(1100, 0) | {"first_name": "Zoë"})
    content = to_csv(rows).decode().encode("cp1252")
    with pytest.raises(WholeFileNeeded):
        collect_submission(chunked(content, 500))
    outcome = whole(content)
    assert outcome.accepted and outcome.tables[0].rows_received == 1101


def test_each_table_ends_with_its_totals() -> None:
    rows = [person_row(i, i % len(BREAKS)) for i in range(20)]
    chunks = list(chunked(to_csv(rows), 4))
    assert [c.end is not None for c in chunks] == [False] * (len(chunks) - 1) + [True]
    end = chunks[-1].end
    assert end is not None
    assert end.rows_received == sum(c.rows_received for c in chunks) == 20
    assert end.rows_clean == sum(c.clean.height for c in chunks)
    assert end.rows_rejected == sum(c.rejected.height for c in chunks)
    assert chunks[-1].clean.is_empty() and chunks[-1].rows_received == 0


@given(
    lines=st.lists(
        st.sampled_from(["a,b", '"x\n,y",z', '"q""q",r', "", "\r", 'c,"d"', "e,f"]), max_size=12
    ),
    target=st.integers(1, 12),
)
def test_pieces_are_cut_between_records(lines: list[str], target: int) -> None:
    data = "\n".join(lines).encode()
    start, pieces = 0, []
    while start < len(data):
        end = _cut_after(data, start, start + target)
        assert end > start
        pieces.append(data[start:end])
        start = end
    assert b"".join(pieces) == data
    for piece in pieces[:-1]:
        assert piece.count(b'"') % 2 == 0
        assert piece.endswith(b"\n") and not piece.endswith((b"\n\n", b"\n\r\n"))


@given(
    lines=st.lists(st.sampled_from(["a,b", "", "\r", "c,d,e", "f"]), max_size=12),
    start=st.integers(0, 20),
    target=st.integers(1, 12),
)
def test_data_without_quotes_is_cut_the_same_without_counting_them(
    lines: list[str], start: int, target: int
) -> None:
    data = "\n".join(lines).encode()
    assert _cut_after(data, start, start + target, quoted=False) == _cut_after(
        data, start, start + target
    )


def _read_in_threads(content: bytes, chunk_rows: int, order: list[int]) -> list[Any]:
    """Each slice read in a thread of its own, the threads started in `order`: the frames, or
    the error each read raised, by slice."""
    layout = csv_layout(content)
    assert layout is not None
    slices = list(csv_slices(layout, csv_pieces(layout, chunk_rows=chunk_rows)))
    results: list[Any] = [None] * len(slices)

    def read(index: int) -> None:
        try:
            results[index] = slices[index].read()
        except WholeFileNeeded as error:
            results[index] = error

    threads = [threading.Thread(target=read, args=(i,)) for i in order if i < len(slices)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)  # no read waits for ever
    return results


@settings(max_examples=25, deadline=None)
@given(order=st.permutations(range(10)), chunk_rows=st.integers(20, 60))
def test_slices_read_in_any_thread_order_are_numbered_as_in_file_order(
    order: list[int], chunk_rows: int
) -> None:
    rows = [person_row(i, i % len(BREAKS)) for i in range(150)]
    content = to_csv(rows, blank_lines=frozenset({5, 70}))
    layout = csv_layout(content)
    assert layout is not None
    pieces = csv_pieces(layout, chunk_rows=chunk_rows)
    in_file_order = pl.concat([piece.read() for piece in csv_slices(layout, pieces)])
    read_by_threads = _read_in_threads(content, chunk_rows, order)
    assert pl.concat(read_by_threads).equals(in_file_order)
    assert in_file_order.get_column("row_number").to_list()[:3] == [2, 3, 4]


def test_a_piece_that_cannot_be_read_fails_every_piece_after_it() -> None:
    rows = [person_row(i, 0) for i in range(1100)]  # past the records sampled for the header
    wider = b"P9,F9,CHILD,,,,,,,,,,,,extra\n"
    more = to_csv([person_row(i, 0) for i in range(1100, 2200)]).split(b"\n", 1)[1]
    results = _read_in_threads(to_csv(rows) + wider + more, 500, [4, 3, 2, 1, 0])
    failed = [isinstance(result, WholeFileNeeded) for result in results]
    first = failed.index(True)
    assert 0 < first < len(results) - 1
    assert failed == [False] * first + [True] * (len(results) - first)


# --- loading chunk by chunk --------------------------------------------------------------

RECEIVED = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture(params=["duckdb", "postgresql"])
def two_warehouses(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Warehouse]]:
    """Two empty warehouses of one kind: one loaded whole, one chunk by chunk."""
    with ExitStack() as stack:
        if request.param == "duckdb":
            urls = [f"duckdb:///{tmp_path / f'w{i}.duckdb'}" for i in range(2)]
        else:
            require_postgres()
            urls = [stack.enter_context(postgres_database("trial_chunks_test")) for _ in range(2)]
        built = [Warehouse(url) for url in urls]
        for warehouse in built:
            warehouse.create_schema()
            stack.callback(warehouse.dispose)
        yield built


def warehouse_contents(warehouse: Warehouse) -> dict[str, Any]:
    """Every table's rows (in a stable order), and the names of every table there is."""
    contents: dict[str, Any] = {}
    with warehouse.engine.connect() as conn:
        for schema in ("clean", "history", "ops"):
            names = sorted(sa.inspect(conn).get_table_names(schema=schema))
            contents[schema] = names
            for name in names:
                table = warehouse.table(schema, name)  # KeyError: a table the layout lacks
                ordered = sorted(conn.execute(sa.select(table)).all(), key=repr)
                contents[f"{schema}.{name}"] = ordered
    return contents


def load_chunks(
    warehouse: Warehouse, submission: ChunkedSubmission, replace: bool, rows: int
) -> LoadResult | None:
    seen: list[ChunkTotals] = []

    class NotingPolicy:
        def decide(self, totals: ChunkTotals) -> bool:
            seen.append(totals)
            return replace

    result = None
    for chunks in tables_of(submission):
        result = warehouse.load_return_chunks(
            la_code=LA,
            dataset="people",
            submission_id="s1",
            key_id=submission.key_id,
            received_at=RECEIVED,
            chunks=chunks,
            replace=NotingPolicy(),
        )
    assert [t.rows_received for t in seen] == [rows]
    return result


@pytest.mark.parametrize("replace", [True, False])
def test_loading_chunks_equals_loading_the_whole_outcome(
    two_warehouses: list[Warehouse], replace: bool
) -> None:
    by_whole, by_chunks = two_warehouses
    content = to_csv([person_row(i, i % len(BREAKS)) for i in range(30)])
    outcome = whole(content)
    expected = by_whole.load_return(
        la_code=LA,
        dataset="people",
        submission_id="s1",
        key_id=outcome.key_id,
        received_at=RECEIVED,
        table=outcome.tables[0],
        replace=replace,
    )
    assert load_chunks(by_chunks, chunked(content, 4), replace, 30) == expected
    assert warehouse_contents(by_chunks) == warehouse_contents(by_whole)


def spool_folders(database: Path) -> list[Path]:
    return sorted(database.parent.glob(database.name + SPOOL_MARK + "*"))


def test_a_failure_part_way_leaves_the_warehouse_as_it_was(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    warehouse = Warehouse(f"duckdb:///{database}")
    warehouse.create_schema()
    load_chunks(warehouse, chunked(to_csv([person_row(i, 0) for i in range(30)]), 7), True, 30)
    before = warehouse_contents(warehouse)
    rows = [person_row(i, 0) for i in range(1100)]
    ragged = to_csv(rows) + b"P9,F9,CHILD,,,,,,,,,,,,extra\n"
    spooled: list[Path] = []
    with pytest.raises(WholeFileNeeded):
        for chunks in tables_of(chunked(ragged, 300)):
            warehouse.load_return_chunks(
                la_code=LA,
                dataset="people",
                submission_id="s2",
                key_id=TOKENISER.key_id,
                received_at=RECEIVED,
                chunks=_noting_spools(chunks, database, spooled),
            )
    assert spooled  # chunks were spooled before the wider record was met...
    assert warehouse_contents(warehouse) == before  # ...and no rows are left behind
    assert spool_folders(database) == []  # nor any spool
    warehouse.dispose()


def _noting_spools(chunks: Iterator[Any], database: Path, seen: list[Path]) -> Iterator[Any]:
    for chunk in chunks:
        seen.extend(p for f in spool_folders(database) for p in f.iterdir())
        yield chunk


SETTINGS = "SELECT current_setting('memory_limit'), current_setting('preserve_insertion_order')"


def duckdb_settings(conn: sa.Connection) -> tuple[str, str]:
    memory, order = conn.execute(sa.text(SETTINGS)).one()
    return str(memory), str(order).lower()


def settings_during_inserts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Filled with DuckDB's settings as each spooled table is inserted."""
    during: list[tuple[str, str]] = []
    insert_into = ingest.warehouse.spool.ParquetSpool.insert_into

    def noting_settings(spool: Any, conn: sa.Connection, table: sa.Table, target: str) -> None:
        during.append(duckdb_settings(conn))
        insert_into(spool, conn, table, target)

    monkeypatch.setattr(ingest.warehouse.spool.ParquetSpool, "insert_into", noting_settings)
    return during


def test_the_spool_is_inserted_with_less_memory_and_the_settings_are_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    warehouse.create_schema()
    during = settings_during_inserts(monkeypatch)
    rows = [person_row(i, 0) for i in range(30)]
    with warehouse.held_open(), warehouse.engine.connect() as conn:  # one DuckDB instance
        before = duckdb_settings(conn)
        load_chunks(warehouse, chunked(to_csv(rows), 7), True, 30)
        assert duckdb_settings(conn) == before
        assert during and all(s == ("244.1 MiB", "false") for s in during)
        assert before[1] == "true"

        def failing(*args: Any) -> None:
            raise duckdb.IOException("injected")

        monkeypatch.setattr(Warehouse, "_finish_chunks", failing)
        with pytest.raises(WarehouseLoadError):
            load_chunks(warehouse, chunked(to_csv(rows), 7), True, 30)
        assert duckdb_settings(conn) == before

        monkeypatch.undo()
        conn.execute(sa.text("SET memory_limit = '3GB'"))  # the operator's: left alone
        operators = duckdb_settings(conn)
        load_chunks(warehouse, chunked(to_csv(rows), 7), True, 30)
        assert duckdb_settings(conn) == operators != before
    warehouse.dispose()


def test_an_in_memory_warehouse_spools_without_a_memory_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    warehouse = Warehouse("duckdb://")
    warehouse.create_schema()
    during = settings_during_inserts(monkeypatch)
    with warehouse.engine.connect() as conn:
        before = duckdb_settings(conn)
    load_chunks(warehouse, chunked(to_csv([person_row(i, 0) for i in range(30)]), 7), True, 30)
    assert during and all(s == (before[0], "false") for s in during)
    warehouse.dispose()


def test_the_spool_of_a_killed_load_is_removed_by_the_next(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    warehouse = Warehouse(f"duckdb:///{database}")
    warehouse.create_schema()
    load_chunks(warehouse, chunked(to_csv([person_row(i, 0) for i in range(30)]), 7), True, 30)
    before = warehouse_contents(warehouse)
    abandoned = tmp_path / f"w.duckdb{SPOOL_MARK}k1ll3d"  # as a killed load leaves it
    abandoned.mkdir()
    (abandoned / "history-000000.parquet").write_bytes(b"PAR1")
    unrelated = tmp_path / "w.duckdb.notes"  # not a load's
    unrelated.mkdir()

    load_chunks(warehouse, chunked(to_csv([person_row(i, 0) for i in range(30)]), 7), True, 30)

    assert spool_folders(database) == []
    assert unrelated.is_dir()
    assert warehouse_contents(warehouse) == before  # the same return again: nothing changes
    warehouse.dispose()
