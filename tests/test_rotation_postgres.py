"""Key rotation of a PostgreSQL warehouse: rebuilt under `__rotating` schemas and switched over
in place, or refused with the warehouse in use left as it was."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from e2e import postgres_database, require_postgres
from test_rotation import (
    NOW_ROTATED,
    Trial,
    _another_run_lands,
    _column,
    _counts,
    _data,
    _linked,
    built_trial,
)

from ingest.rotation import RotationRefused, key_rotations, rotate_key, stored_key_ids
from ingest.storage.landing import LandingStore
from ingest.warehouse import Warehouse, duckdb_url
from pseudonymise.keys import new_key_text, parse_key_text
from pseudonymise.tokens import Tokeniser
from schemas.datasets import DATASETS

__all__ = ["built_trial"]


# --- PostgreSQL: rebuilt under `__rotating` schemas and switched over in place ---------------


@pytest.fixture(scope="module")
def pg_template(built_trial: Trial, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The trial's warehouse in PostgreSQL under the old key: a template for each test's
    database. Built by a rotation to the same key into an empty database (`--target-url`)."""
    require_postgres()
    copy = tmp_path_factory.mktemp("pg_template")
    shutil.copytree(built_trial.landing.root.parent / "landing", copy / "landing")
    shutil.copytree(built_trial.landing.root.parent / "home", copy / "home")
    landing = LandingStore(copy / "landing", built_trial.landing_key)
    with postgres_database("trial_rotation_tmpl") as url:
        rotate_key(
            landing,
            duckdb_url(copy / "home" / "warehouse.duckdb"),
            Tokeniser(built_trial.old_key),
            target_url=url,
            clock=lambda: NOW_ROTATED - timedelta(days=1),
        )
        yield str(sa.make_url(url).database)


@pytest.fixture
def pg_trial(built_trial: Trial, pg_template: str, tmp_path: Path) -> Iterator[Trial]:
    """A copy of the trial whose warehouse is a PostgreSQL database of its own."""
    shutil.copytree(built_trial.landing.root.parent / "landing", tmp_path / "landing")
    landing = LandingStore(tmp_path / "landing", built_trial.landing_key)
    with postgres_database("trial_rotation_test", template=pg_template) as url:
        yield replace(built_trial, landing=landing, url=url)


def _query(url: str, statement: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(statement))]
    finally:
        engine.dispose()


def _schemas(url: str) -> set[str]:
    rows = _query(
        url,
        "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
        "AND nspname NOT IN ('information_schema', 'public')",
    )
    return {r[0] for r in rows}


def _view_sources(url: str) -> dict[str, set[str]]:
    """Per schema holding views: the schemas of the tables its views read (by OID)."""
    rows = _query(
        url,
        "SELECT DISTINCT v.relnamespace::regnamespace::text, t.relnamespace::regnamespace::text "
        "FROM pg_rewrite r JOIN pg_class v ON v.oid = r.ev_class "
        "JOIN pg_depend d ON d.objid = r.oid AND d.classid = 'pg_rewrite'::regclass "
        "AND d.refclassid = 'pg_class'::regclass "
        "JOIN pg_class t ON t.oid = d.refobjid "
        "WHERE v.relkind = 'v' AND t.oid <> v.oid "
        "AND v.relnamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema')",
    )
    found: dict[str, set[str]] = {}
    for view_schema, table_schema in rows:
        found.setdefault(view_schema, set()).add(table_schema)
    return found


def _everything(url: str) -> dict[str, Any]:
    """Every table's rows (rotation records included), the schemas and the views' text."""
    warehouse = Warehouse(url)
    tables = list(warehouse.table("ops", "submissions").metadata.tables.values())
    with warehouse.engine.connect() as conn:
        rows: dict[str, Any] = {
            t.fullname: sorted(map(tuple, conn.execute(sa.select(t))), key=repr) for t in tables
        }
    warehouse.dispose()
    rows["ops.key_rotations"] = sorted(_query(url, "SELECT * FROM ops.key_rotations"), key=repr)
    rows["schemas"] = sorted(_schemas(url))
    rows["views"] = _query(
        url, "SELECT schemaname, viewname, definition FROM pg_views ORDER BY 1, 2"
    )
    return rows


def test_postgresql_rotation_switches_over_in_place(pg_trial: Trial) -> None:
    url = pg_trial.url
    old_tokens = _column(url, "clean", "people", "person_token")
    old_counts, old_linked = _counts(url), _linked(url)
    before = pg_trial.warehouse()
    statuses = [(r.receipt_id, r.dataset, r.status, r.reason) for r in before.submissions()]
    old_current = before.current_returns()
    before.dispose()
    # A leftover of a rotation killed half-way: dropped before building.
    _query_in_transaction(
        url, "CREATE SCHEMA clean__rotating", "CREATE TABLE clean__rotating.junk (a int)"
    )
    tokeniser = Tokeniser(parse_key_text(new_key_text()))

    result = rotate_key(pg_trial.landing, url, tokeniser, clock=lambda: NOW_ROTATED)

    assert result.swapped
    assert result.target_url == url
    assert result.retired_schemas == ()
    assert result.old_key_ids == (pg_trial.old_key.key_id,)
    assert _schemas(url) == {"clean", "history", "ops", "trial", "analysis"}
    new_tokens = _column(url, "clean", "people", "person_token")
    assert len(new_tokens) == len(old_tokens) > 0
    assert not new_tokens & old_tokens
    assert _counts(url) == old_counts
    assert _linked(url) == old_linked > 0
    after = pg_trial.warehouse()
    assert stored_key_ids(after) == {tokeniser.key_id}
    withdrawn = _column(url, "ops", "withdrawn", "person_token")
    assert withdrawn and not withdrawn & old_tokens
    assert after.current_returns() == old_current
    assert [(r.receipt_id, r.dataset, r.status, r.reason) for r in after.submissions()] == (
        statuses
    )
    records = key_rotations(after)
    assert [r["new_key_id"] for r in records] == [pg_trial.old_key.key_id, tokeniser.key_id]
    after.dispose()
    # The analysis views built in the rotating schemas read the new tables after the renames.
    assert _view_sources(url) == {"analysis": {"clean", "trial"}, "clean": {"history", "ops"}}
    viewed = {r[0] for r in _query(url, "SELECT person_token FROM analysis.people")}
    assert viewed == new_tokens
    for dataset in DATASETS:
        [(n,)] = _query(url, f"SELECT count(*) FROM analysis.{dataset}")  # noqa: S608
        assert n == old_counts[f"clean.{dataset}"]
    # The service's next start finds its warehouse as usual.
    again = pg_trial.warehouse()
    again.create_schema()
    assert again.current_returns() == old_current
    again.dispose()


def _query_in_transaction(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def test_postgresql_rotation_keep_old_keeps_the_old_schemas_from_the_cli(
    pg_trial: Trial, capsys: pytest.CaptureFixture[str]
) -> None:
    from ingest.cli import main

    url = pg_trial.url
    old_data = _data(url)
    old_tokens = _column(url, "clean", "people", "person_token")
    new_key = new_key_text()
    env = {
        "TRIAL_LANDING_URL": str(pg_trial.landing.root),
        "TRIAL_LANDING_KEY": pg_trial.landing_key_text,
        "TRIAL_WAREHOUSE_URL": url,
        "TRIAL_PSEUDONYM_KEY": new_key,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        code = main(["rotate-key", "--keep-old"])

    out = capsys.readouterr().out
    assert code == 0, out
    assert new_key not in out
    assert pg_trial.landing_key_text not in out
    assert not any(token in out for token in old_tokens)
    retired = {s for s in _schemas(url) if "__retired_" in s}
    assert len(retired) == 5
    suffix = next(iter(retired)).split("__retired_")[1]
    assert retired == {
        f"{s}__retired_{suffix}" for s in ("clean", "history", "ops", "trial", "analysis")
    }
    assert all(name in out for name in retired)
    assert not any(s.endswith("__rotating") for s in _schemas(url))
    # The old tables are there, untouched, under the retired names; the live ones are new.
    for key, rows in old_data.items():
        schema, table = key.split(".")
        statement = f"SELECT * FROM {schema}__retired_{suffix}.{table}"  # noqa: S608
        assert sorted(_query(url, statement), key=repr) == rows
    assert not _column(url, "clean", "people", "person_token") & old_tokens
    assert _view_sources(url) == {
        "analysis": {"clean", "trial"},
        "clean": {"history", "ops"},
        f"analysis__retired_{suffix}": {f"clean__retired_{suffix}", f"trial__retired_{suffix}"},
        f"clean__retired_{suffix}": {f"history__retired_{suffix}", f"ops__retired_{suffix}"},
    }


def test_a_failed_verification_leaves_the_postgresql_warehouse_as_it_was(
    pg_trial: Trial, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.rotation as rotation

    def failing_verify(*args: Any, **kwargs: Any) -> None:
        raise rotation.RotationVerificationFailed("row counts differ for clean 901 x people")

    monkeypatch.setattr(rotation, "verify", failing_verify)
    before = _everything(pg_trial.url)

    with pytest.raises(rotation.RotationVerificationFailed):
        rotate_key(pg_trial.landing, pg_trial.url, Tokeniser(parse_key_text(new_key_text())))

    assert _everything(pg_trial.url) == before
    assert not any("__" in s for s in _schemas(pg_trial.url))


def test_a_file_processed_during_the_postgresql_rebuild_stops_the_switch_over(
    pg_trial: Trial, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.rotation as rotation

    real_rebuild = rotation.rebuild

    def rebuild_while_a_run_lands(*args: Any, **kwargs: Any) -> rotation.RotationResult:
        result = real_rebuild(*args, **kwargs)
        assert _schemas(pg_trial.url) >= {"clean__rotating", "analysis__rotating"}
        _another_run_lands(pg_trial.warehouse())
        return result

    monkeypatch.setattr(rotation, "rebuild", rebuild_while_a_run_lands)
    before = _everything(pg_trial.url)

    with pytest.raises(RotationRefused, match="processed while"):
        rotate_key(pg_trial.landing, pg_trial.url, Tokeniser(parse_key_text(new_key_text())))

    after = _everything(pg_trial.url)
    assert len(after.pop("ops.submissions")) == len(before.pop("ops.submissions")) + 1
    assert after == before
    assert not any("__" in s for s in _schemas(pg_trial.url))


def test_a_writer_holding_the_postgresql_warehouse_makes_the_switch_over_refuse(
    pg_trial: Trial, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.rotation.postgres_switch as rotation

    monkeypatch.setattr(rotation, "SWAP_LOCK_TIMEOUT", "1s")
    before = _everything(pg_trial.url)
    engine = sa.create_engine(pg_trial.url)
    try:
        with engine.connect() as writer:
            # A load in progress: its transaction holds a write lock on a clean table.
            writer.execute(sa.text("LOCK TABLE clean.people IN ROW EXCLUSIVE MODE"))
            with pytest.raises(RotationRefused, match="busy"):
                rotate_key(
                    pg_trial.landing, pg_trial.url, Tokeniser(parse_key_text(new_key_text()))
                )
            writer.rollback()
    finally:
        engine.dispose()

    assert _everything(pg_trial.url) == before
    assert not any("__" in s for s in _schemas(pg_trial.url))


def test_a_warehouse_with_a_schema_suffix_builds_only_under_its_own_schemas(
    pg_trial: Trial,
) -> None:
    before = _everything(pg_trial.url)
    suffixed = Warehouse(pg_trial.url, schema_suffix="__other")
    suffixed.create_schema()
    assert suffixed.submissions() == []
    assert suffixed.schema_name("clean") == "clean__other"
    suffixed.dispose()
    assert _view_sources(pg_trial.url)["analysis__other"] == {"clean__other", "trial__other"}
    assert _view_sources(pg_trial.url)["clean__other"] == {"history__other", "ops__other"}
    after = _everything(pg_trial.url)
    assert set(after.pop("schemas")) - set(before.pop("schemas")) == {
        f"{s}__other" for s in ("clean", "history", "ops", "trial", "analysis")
    }
    assert after["views"] != before["views"]  # the suffixed analysis views were added
    after.pop("views"), before.pop("views")
    assert after == before
    with pytest.raises(ValueError, match="schema suffix"):
        Warehouse(pg_trial.url, schema_suffix="; DROP")


def test_a_view_outside_the_warehouse_reading_it_makes_the_switch_over_refuse(
    pg_trial: Trial,
) -> None:
    _query_in_transaction(
        pg_trial.url, "CREATE VIEW public.people_count AS SELECT count(*) AS n FROM clean.people"
    )
    before = _everything(pg_trial.url)

    with pytest.raises(RotationRefused, match="1 view"):
        rotate_key(pg_trial.landing, pg_trial.url, Tokeniser(parse_key_text(new_key_text())))

    assert _everything(pg_trial.url) == before
    assert not any("__" in s for s in _schemas(pg_trial.url))
    assert _query(pg_trial.url, "SELECT n FROM public.people_count")[0][0] > 0


def test_a_second_postgresql_rotation_refuses_while_one_is_running(pg_trial: Trial) -> None:
    from ingest.rotation.postgres_switch import _ROTATION_LOCK

    engine = sa.create_engine(pg_trial.url)
    try:
        with engine.connect() as other:
            other.execute(
                sa.text("SELECT pg_advisory_lock(hashtext(:name))"), {"name": _ROTATION_LOCK}
            )
            with pytest.raises(RotationRefused, match="another key rotation"):
                rotate_key(
                    pg_trial.landing, pg_trial.url, Tokeniser(parse_key_text(new_key_text()))
                )
            other.execute(
                sa.text("SELECT pg_advisory_unlock(hashtext(:name))"), {"name": _ROTATION_LOCK}
            )
    finally:
        engine.dispose()
    assert not any("__" in s for s in _schemas(pg_trial.url))
