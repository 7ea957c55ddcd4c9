# ruff: noqa: S608 -- table and column names in the SQL come from the declarations, never a file
"""Runs the cross-dataset rules of `schemas/cross_dataset_rules.py` in the warehouse, for one LA.

Counts and row numbers (in the LA's current return) only: the queries compare tokens inside
the database and bring back no token. The `clean` schema is named as the warehouse names it
(`Warehouse.schema_name`), so the checks run on a key-rotation warehouse too.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ingest.warehouse.warehouse import Warehouse
from schemas.cross_dataset_rules import (
    MINIMUM_AGES,
    REFERENCES,
    CrossCheckFinding,
    MinimumAge,
    Reference,
)

# Row numbers listed per finding; the count is always complete.
ROW_NUMBERS_LISTED = 20


def cross_check_findings(warehouse: Warehouse | sa.Engine, la_code: str) -> list[CrossCheckFinding]:
    """Every cross-dataset finding for the LA's current clean tables (empty when all is well).

    Given an engine rather than a `Warehouse`, its schemas are the layout's own names (a
    warehouse without a schema suffix).
    """
    if isinstance(warehouse, Warehouse):
        engine, clean = warehouse.engine, _quoted_schema(warehouse)
    else:
        engine, clean = warehouse, "clean"
    with engine.connect() as conn:
        queries = _Queries(conn, la_code, clean)
        findings = [queries.reference(ref) for ref in REFERENCES]
        findings += [queries.age(check) for check in MINIMUM_AGES]
    return [f for f in findings if f is not None and f.rows]


def _quoted_schema(warehouse: Warehouse) -> str:
    preparer = warehouse.engine.dialect.identifier_preparer
    return preparer.quote_schema(warehouse.schema_name("clean"))


@dataclass(frozen=True)
class _Queries:
    """The queries for one LA, on `conn`; `clean` is the quoted name of the `clean` schema."""

    conn: sa.Connection
    la_code: str
    clean: str

    def reference(self, ref: Reference) -> CrossCheckFinding | None:
        condition = (
            f"d.la_code = :la AND d.{ref.column} IS NOT NULL AND NOT EXISTS ("
            f"SELECT 1 FROM {self.clean}.{ref.target} t "
            f"WHERE t.la_code = d.la_code AND t.{ref.target_column} = d.{ref.column})"
        )
        return self._finding(ref, condition, target=ref.target)

    def age(self, check: MinimumAge) -> CrossCheckFinding | None:
        condition = (
            f"d.la_code = :la AND EXISTS (SELECT 1 FROM {self.clean}.people p "
            f"WHERE p.la_code = d.la_code AND p.person_token = d.{check.column} "
            f"AND d.{check.on_field} < p.month_of_birth + INTERVAL '{check.years} years')"
        )
        return self._finding(check, condition, target="people")

    def _finding(
        self, check: Reference | MinimumAge, condition: str, target: str
    ) -> CrossCheckFinding | None:
        """The rows of `check.dataset` (`d`) meeting `condition`; None if the LA has none
        there."""
        if not self._has_rows(check.dataset):
            return None
        rows, numbers = self._count_and_rows(check.dataset, condition)
        return CrossCheckFinding(
            dataset=check.dataset,
            column=check.field,
            rule=check.rule,
            description=check.describe(),
            rows=rows,
            row_numbers=numbers,
            target_received=self._has_rows(target),
        )

    def _has_rows(self, dataset: str) -> bool:
        query = sa.text(f"SELECT 1 FROM {self.clean}.{dataset} WHERE la_code = :la LIMIT 1")
        return self.conn.execute(query, {"la": self.la_code}).first() is not None

    def _count_and_rows(self, dataset: str, condition: str) -> tuple[int, tuple[int, ...]]:
        count = sa.text(f"SELECT count(*) FROM {self.clean}.{dataset} d WHERE {condition}")
        listed = sa.text(
            f"SELECT d.row_number FROM {self.clean}.{dataset} d WHERE {condition} "
            f"ORDER BY d.row_number LIMIT {ROW_NUMBERS_LISTED}"
        )
        params = {"la": self.la_code}
        total = int(self.conn.execute(count, params).scalar_one())
        numbers = tuple(int(n) for (n,) in self.conn.execute(listed, params)) if total else ()
        return total, numbers
