"""Every id and fingerprint derived from a file's bytes is keyed (HMAC under the landing key):
the submission id, the audit's `content_hmac`, landing object names and LA report names. A
plain SHA-256 of a one-row file was brute-forced back to the person's ID.

Runs on DuckDB and, when the local server answers, on PostgreSQL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from e2e import postgres_database, require_postgres
from old_formats import make_old_format
from test_landing import land_legacy

from ingest.processing import (
    Services,
    SubmissionResult,
    process_received,
    take_from_drop,
    take_from_landing,
)
from ingest.retention import apply_retention
from ingest.rotation import rotate_key
from ingest.storage.drop import REPORTS_FOLDER, LocalFolderDrop
from ingest.storage.landing import LandingStore, content_hmac
from ingest.warehouse import Warehouse, duckdb_url
from pseudonymise.keys import new_key_text, parse_key_text
from pseudonymise.tokens import Tokeniser

PSEUDONYM_KEY = parse_key_text(new_key_text())
LANDING_KEY = parse_key_text(new_key_text())
OTHER_LANDING_KEY = parse_key_text(new_key_text())
RECEIVED = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
ONE_ROW = (
    b"person_id,family_id,role,date_of_birth,sex,first_name\n"
    b"P-0000042,F-0000042,CHILD,2012-01-02,F,Zebedee\n"
)


@pytest.fixture(params=["duckdb", "postgresql"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "duckdb":
        yield duckdb_url(tmp_path / "warehouse.duckdb")
        return
    require_postgres()
    with postgres_database("trial_keyed_ids") as url:
        yield url


def deliver_and_process(
    services: Services, drop_root: Path, name: str, content: bytes = ONE_ROW
) -> SubmissionResult:
    (drop_root / "201" / name).write_bytes(content)
    assert services.drop is not None
    [listed] = services.drop.list_inbox("201")
    received = take_from_drop(services, "201", listed.fingerprint)
    assert received is not None
    return process_received(services, received)


def services_for(warehouse_url: str, tmp_path: Path) -> Services:
    drop_root = tmp_path / "drop"
    (drop_root / "201").mkdir(parents=True)
    return Services(
        landing=LandingStore(tmp_path / "landing", LANDING_KEY),
        warehouse=Warehouse(warehouse_url),
        tokeniser=Tokeniser(PSEUDONYM_KEY),
        drop=LocalFolderDrop(drop_root, LANDING_KEY),
        clock=lambda: RECEIVED,
    )


def audit_text(warehouse: Warehouse) -> str:
    with warehouse.engine.connect() as conn:
        return repr(conn.execute(sa.text("SELECT * FROM ops.submissions")).all())


def test_a_files_ids_are_keyed_and_duplicates_are_still_found(
    warehouse_url: str, tmp_path: Path
) -> None:
    services = services_for(warehouse_url, tmp_path)
    drop_root, landing, warehouse = tmp_path / "drop", services.landing, services.warehouse
    assert isinstance(landing, LandingStore)

    first = deliver_and_process(services, drop_root, "people.csv")
    again = deliver_and_process(services, drop_root, "people (copy).csv")

    plain = hashlib.sha256(ONE_ROW).hexdigest()
    keyed = content_hmac(LANDING_KEY, "201", ONE_ROW)
    assert (first.status.value, again.status.value) == ("accepted", "duplicate")
    assert first.content_hmac == again.content_hmac == keyed != plain
    assert first.submission_id == again.submission_id == f"201-{keyed[:24]}"
    assert content_hmac(OTHER_LANDING_KEY, "201", ONE_ROW) != keyed
    assert {r.content_hmac for r in warehouse.submissions()} == {keyed}
    written = [
        audit_text(warehouse),
        *(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")),
        *(p.read_text() for p in (drop_root / "201" / REPORTS_FOLDER).iterdir()),
        *(p.read_text() for p in landing.root.rglob("*.json")),
    ]
    warehouse.dispose()
    if warehouse_url.startswith("duckdb"):
        written.append((tmp_path / "warehouse.duckdb").read_bytes().decode("latin-1"))
    for text in written:
        assert plain[:16] not in text


def test_a_file_landed_before_ids_were_keyed_is_replayed_by_rotation_and_retention(
    warehouse_url: str, tmp_path: Path
) -> None:
    """Files landed under the plain-hash ids keep them and stay readable; what is recorded of
    them afresh (the audit's `content_hmac`) is keyed."""
    landing = LandingStore(tmp_path / "landing", LANDING_KEY)
    legacy_id = land_legacy(landing, ONE_ROW, "201", LANDING_KEY, RECEIVED)
    warehouse = Warehouse(warehouse_url)
    services = Services(landing=landing, warehouse=warehouse, tokeniser=Tokeniser(PSEUDONYM_KEY))
    first = process_received(services, take_from_landing(services, "201", legacy_id))
    warehouse.dispose()

    rotated = rotate_key(landing, warehouse_url, Tokeniser(parse_key_text(new_key_text())))

    keyed = content_hmac(LANDING_KEY, "201", ONE_ROW)
    assert (first.status.value, first.submission_id, first.content_hmac) == (
        "accepted",
        legacy_id,
        keyed,
    )
    assert rotated.submissions_replayed == 1
    after = Warehouse(warehouse_url)
    assert {(r.submission_id, r.content_hmac) for r in after.submissions()} == {(legacy_id, keyed)}
    expired = apply_retention(
        landing, after, now=RECEIVED + timedelta(days=800), retention_days=730
    )
    after.dispose()
    assert [d.submission_id for d in expired.deleted] == [legacy_id]
    assert landing.list() == []


def test_a_copy_of_a_file_recorded_before_ids_were_keyed_is_a_duplicate(
    warehouse_url: str, tmp_path: Path
) -> None:
    """The migrated audit has no HMAC for it, but its rows carry the id it had then."""
    old = Warehouse(warehouse_url)
    make_old_format(old, hashlib.sha256(ONE_ROW).hexdigest())
    old.dispose()
    services = services_for(warehouse_url, tmp_path)

    copy = deliver_and_process(services, tmp_path / "drop", "people.csv")
    other = ONE_ROW.replace(b"Zebedee", b"Dougal")
    changed = deliver_and_process(services, tmp_path / "drop", "people.csv", other)
    services.warehouse.dispose()

    assert (copy.status.value, changed.status.value) == ("duplicate", "accepted")
