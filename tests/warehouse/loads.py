"""Returns to load into a test warehouse, and its tables read back (for the tests here)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import sqlalchemy as sa

from ingest.warehouse import (
    Warehouse,
    dataset_column_types,
)
from schemas.outcome import ISSUE_SCHEMA, ROW_NUMBER, FileIssue, TableOutcome
from schemas.rules import CODE_LIST, Severity

T0 = datetime(2025, 1, 10, 9, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=30)
T2 = T0 + timedelta(days=60)

# --- building returns -----------------------------------------------------------------------


def frame(dataset: str, rows: Sequence[dict[str, Any]], *, rules: bool = False) -> pl.DataFrame:
    """A clean (or rejected) frame of `dataset`: unspecified columns are null."""
    schema: dict[str, pl.DataType] = {ROW_NUMBER: pl.Int64()}
    schema.update(dataset_column_types(dataset))
    if rules:
        schema["rules"] = pl.String()
    numbered = [{ROW_NUMBER: i + 2, **row} for i, row in enumerate(rows)]
    return pl.DataFrame(
        [{c: row.get(c) for c in schema} for row in numbered], schema=schema, orient="row"
    )


def outcome(
    dataset: str,
    clean: Sequence[dict[str, Any]],
    rejected: Sequence[dict[str, Any]] = (),
    *,
    file_issues: Sequence[FileIssue] = (),
) -> TableOutcome:
    rejected_rows = [{"rules": CODE_LIST, **row} for row in rejected]
    issues = pl.DataFrame(
        {
            ROW_NUMBER: [len(clean) + 2 + i for i in range(len(rejected_rows))],
            "column": ["role"] * len(rejected_rows),
            "rule": [CODE_LIST] * len(rejected_rows),
            "severity": [str(Severity.ERROR)] * len(rejected_rows),
        },
        schema=ISSUE_SCHEMA,
    )
    return TableOutcome(
        dataset=dataset,
        source="",
        rows_received=len(clean) + len(rejected_rows),
        clean=frame(dataset, clean),
        rejected=frame(dataset, rejected_rows, rules=True),
        issues=issues,
        file_issues=list(file_issues),
    )


def person(token: str, family: str = "f1", role: str = "CHILD") -> dict[str, Any]:
    return {
        "person_token": token,
        "family_token": family,
        "role": role,
        "sex": "F",
        "month_of_birth": date(2015, 3, 1),
    }


def people(*tokens: str, family: str = "f1") -> TableOutcome:
    return outcome("people", [person(t, family) for t in tokens])


def load(
    warehouse: Warehouse,
    table: TableOutcome,
    submission: str,
    received_at: datetime = T0,
    la_code: str = "201",
) -> Any:
    return warehouse.load_return(
        la_code=la_code,
        dataset=table.dataset,
        submission_id=f"{la_code}-{submission}",
        key_id="k1-0000000000000000",
        received_at=received_at,
        table=table,
    )


def rows(warehouse: Warehouse, schema: str, name: str, *columns: str) -> list[tuple[Any, ...]]:
    table = warehouse.table(schema, name)
    chosen = [table.c[c] for c in columns] if columns else list(table.c)
    with warehouse.engine.connect() as conn:
        found = [tuple(r) for r in conn.execute(sa.select(*chosen)).all()]
    # Sorted, nulls first: row order is not part of the contract.
    return sorted(found, key=lambda row: [(value is not None, str(value)) for value in row])


def tokens(warehouse: Warehouse, schema: str, dataset: str, la_code: str = "201") -> list[str]:
    name = dataset if schema != "ops" else f"quarantine_{dataset}"
    return sorted(
        r[1] for r in rows(warehouse, schema, name, "la_code", "person_token") if r[0] == la_code
    )


def all_tables(warehouse: Warehouse) -> list[sa.Table]:
    return list(warehouse.table("ops", "submissions").metadata.tables.values())


def snapshot(warehouse: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted."""
    with warehouse.engine.connect() as conn:
        found = {t.fullname: conn.execute(sa.select(t)).all() for t in all_tables(warehouse)}
    return {
        name: sorted((tuple(r) for r in table_rows), key=repr) for name, table_rows in found.items()
    }
