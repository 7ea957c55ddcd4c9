"""The pipeline's chunked path (large files) leaves exactly what its whole-file path leaves.

The same messy synthetic trial, plus a ragged CSV, a file dropped under the wrong LA and a
return the halving check holds, goes through `take_from_drop` + `process_received` twice:
once as every small file is processed (checked whole), once with every file checked and
loaded a few rows at a time. The results, the LAs' reports and every warehouse table must be
equal.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import schemas.chunked
import schemas.submission
from ingest.processing import (
    DatasetStatus,
    Services,
    SubmissionResult,
    SubmissionStatus,
    process_received,
    take_from_drop,
)
from ingest.storage.drop import REPORTS_FOLDER, LocalFolderDrop
from ingest.storage.landing import LandingStore
from ingest.warehouse import SCHEMAS, Warehouse, duckdb_url
from pseudonymise.keys import new_key_text, parse_key_text
from pseudonymise.tokens import Tokeniser
from synthetic import generate_trial
from synthetic.bulk import write_people_csv

pytestmark = pytest.mark.slow

KEY = parse_key_text(new_key_text())
LANDING_KEY = parse_key_text(new_key_text())
FIRST_RECEIVED = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Processed:
    results: list[SubmissionResult]
    reports: dict[str, str]
    tables: dict[str, list[tuple[Any, ...]]]


def _ticking_clock() -> Callable[[], datetime]:
    ticks = itertools.count()
    return lambda: FIRST_RECEIVED + timedelta(minutes=next(ticks))


def _extra_files(folder: Path) -> list[tuple[str, str, bytes]]:
    """(LA code, file name, content): files the trial's own drop does not have."""
    write_people_csv(folder / "bulk.csv", 1_500, seed=3, bad_fraction=0.1, la_code="901")
    write_people_csv(folder / "other.csv", 40, seed=4, la_code="901")
    bulk = (folder / "bulk.csv").read_bytes()
    # A record wider than the header past the reader's sample: found only slice by slice.
    ragged = bulk.rstrip(b"\n") + b",surplus\n"
    short = b"\n".join(bulk.splitlines()[:3]) + b"\n"  # two rows: held by the halving check
    header, *rows = (folder / "other.csv").read_bytes().splitlines()
    wrong_la = b"\n".join([header + b",la_code", *(row + b",901" for row in rows)]) + b"\n"
    return [
        ("901", "people_bulk.csv", bulk),  # many chunks, with bad rows in most of them
        ("901", "people_ragged.csv", ragged),
        ("902", "people_of_901.csv", wrong_la),  # its rows name LA 901: rejected whole
        ("901", "people_short.csv", short),
    ]


def _drop_files(synth: Path, drop_root: Path) -> list[tuple[str, str]]:
    """Copies the trial's drop (and the extra files) under `drop_root`; (LA, name) in order."""
    shutil.copytree(synth / "drop", drop_root)
    order = [
        (path.parent.name, path.name)
        for path in sorted((drop_root).glob("*/*"))
        if path.is_file() and not path.name.startswith(".")
    ]
    for la_code, name, content in _extra_files(synth.parent):
        (drop_root / la_code / name).write_bytes(content)
        order.append((la_code, name))
    return order


def _process_all(base: Path, synth: Path, **chunking: int) -> Processed:
    drop_root = base / "drop"
    order = _drop_files(synth, drop_root)
    drop = LocalFolderDrop(drop_root, KEY)
    warehouse = Warehouse(duckdb_url(base / "warehouse.duckdb"))
    services = Services(
        landing=LandingStore(base / "landing", LANDING_KEY),
        warehouse=warehouse,
        tokeniser=Tokeniser(KEY),
        drop=drop,
        clock=_ticking_clock(),
        **chunking,  # type: ignore[arg-type]
    )
    results = []
    for la_code, name in order:
        [listed] = [o for o in drop.list_inbox(la_code) if o.name == name]
        received = take_from_drop(services, la_code, listed.fingerprint)
        assert received is not None
        results.append(process_received(services, received))
    reports = {
        f"{p.parent.parent.name}/{p.name}": p.read_text()
        for p in sorted(drop_root.glob(f"*/{REPORTS_FOLDER}/*"))
    }
    tables = _all_rows(warehouse)
    warehouse.dispose()
    return Processed(results, reports, tables)


def _all_rows(warehouse: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    listing = sa.text(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' ORDER BY 1, 2"
    )
    found: dict[str, list[tuple[Any, ...]]] = {}
    with warehouse.engine.connect() as conn:
        for schema, name in conn.execute(listing).all():
            # Which inbox file each receipt came from: the two runs' drops are different files.
            if schema in SCHEMAS and (schema, name) != ("ops", "taken_files"):
                rows = conn.execute(
                    sa.select(sa.text("*")).select_from(sa.table(name, schema=schema))
                )
                found[f"{schema}.{name}"] = sorted((tuple(r) for r in rows), key=repr)
    return found


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synth")
    generate_trial(folder / "trial", seed=11, families_per_la=4, mess=True)
    return folder / "trial"


@pytest.fixture(scope="module")
def whole(synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Processed:
    return _process_all(tmp_path_factory.mktemp("whole"), synth)


@dataclass
class ChunkedRun:
    processed: Processed
    chunked_files: int  # files the chunked checker was asked for
    whole_fallbacks: int  # of those, files it could not cut and the pipeline checked whole


@pytest.fixture(scope="module")
def chunked(synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChunkedRun]:
    calls = {"chunked": 0, "fallback": 0}
    with pytest.MonkeyPatch.context() as patch:
        checker = schemas.chunked.check_submission_chunks

        def counting(*args: Any, **kwargs: Any) -> schemas.chunked.ChunkedSubmission:
            calls["chunked"] += 1
            return checker(*args, **kwargs)

        whole_checker = schemas.submission.check_submission

        def counting_whole(*args: Any, **kwargs: Any) -> Any:
            calls["fallback"] += 1  # the pipeline's own whole-file check
            return whole_checker(*args, **kwargs)

        patch.setattr(schemas.chunked, "check_submission_chunks", counting)
        patch.setattr(schemas.submission, "check_submission", counting_whole)
        base = tmp_path_factory.mktemp("chunked")
        processed = _process_all(base, synth, chunked_from_bytes=0, chunk_rows=7)
    yield ChunkedRun(processed, calls["chunked"], calls["fallback"])


def test_every_file_went_through_the_chunked_path(whole: Processed, chunked: ChunkedRun) -> None:
    assert chunked.chunked_files == len(whole.results)
    # The ragged CSV cannot be cut: it and only it was checked whole instead.
    assert chunked.whole_fallbacks == 1


def test_the_results_are_the_same(whole: Processed, chunked: ChunkedRun) -> None:
    assert chunked.processed.results == whole.results


def test_the_reports_are_the_same(whole: Processed, chunked: ChunkedRun) -> None:
    assert chunked.processed.reports == whole.reports
    assert len(whole.reports) == len(whole.results)


def test_the_warehouse_is_the_same(whole: Processed, chunked: ChunkedRun) -> None:
    assert chunked.processed.tables.keys() == whole.tables.keys()
    for name, rows in whole.tables.items():
        assert chunked.processed.tables[name] == rows, name


def test_the_trial_covers_rejection_holding_and_acceptance(whole: Processed) -> None:
    statuses = {r.status for r in whole.results}
    assert {SubmissionStatus.ACCEPTED, SubmissionStatus.REJECTED, SubmissionStatus.HELD} <= statuses
    dataset_statuses = {d.status for r in whole.results for d in r.datasets}
    assert {DatasetStatus.ACCEPTED, DatasetStatus.HELD, DatasetStatus.REJECTED} <= dataset_statuses
    assert any(d.rows_rejected for r in whole.results for d in r.datasets)
