# ruff: noqa: S608 -- table and column names in the SQL come from the declarations, never a file
"""Runs the cross-dataset checks of `schemas/cross_checks.py` in the warehouse, for one LA.

Counts and row numbers (in the LA's current return) only: the queries compare tokens inside
the database and bring back no token.
"""

from __future__ import annotations

import sqlalchemy as sa

from schemas.cross_checks import (
    MINIMUM_AGES,
    REFERENCES,
    CrossCheckFinding,
    MinimumAge,
    Reference,
)

# Row numbers listed per finding; the count is always complete.
ROW_NUMBERS_LISTED = 20


def cross_check_findings(engine: sa.Engine, la_code: str) -> list[CrossCheckFinding]:
    """Every cross-dataset finding for the LA's current clean tables (empty when all is well)."""
    with engine.connect() as conn:
        findings = [_reference_finding(conn, la_code, ref) for ref in REFERENCES]
        findings += [_age_finding(conn, la_code, check) for check in MINIMUM_AGES]
    return [f for f in findings if f is not None and f.rows]


def _has_rows(conn: sa.Connection, dataset: str, la_code: str) -> bool:
    query = sa.text(f"SELECT 1 FROM clean.{dataset} WHERE la_code = :la LIMIT 1")
    return conn.execute(query, {"la": la_code}).first() is not None


def _reference_finding(
    conn: sa.Connection, la_code: str, ref: Reference
) -> CrossCheckFinding | None:
    condition = (
        f"d.la_code = :la AND d.{ref.column} IS NOT NULL AND NOT EXISTS ("
        f"SELECT 1 FROM clean.{ref.target} t "
        f"WHERE t.la_code = d.la_code AND t.{ref.target_column} = d.{ref.column})"
    )
    return _finding(conn, la_code, ref, condition, target=ref.target)


def _age_finding(conn: sa.Connection, la_code: str, check: MinimumAge) -> CrossCheckFinding | None:
    condition = (
        f"d.la_code = :la AND EXISTS (SELECT 1 FROM clean.people p "
        f"WHERE p.la_code = d.la_code AND p.person_token = d.{check.column} "
        f"AND d.{check.on_field} < p.month_of_birth + INTERVAL '{check.years} years')"
    )
    return _finding(conn, la_code, check, condition, target="people")


def _finding(
    conn: sa.Connection, la_code: str, check: Reference | MinimumAge, condition: str, target: str
) -> CrossCheckFinding | None:
    """The rows of `check.dataset` (`d`) meeting `condition`; None if the LA has none there."""
    if not _has_rows(conn, check.dataset, la_code):
        return None
    rows, numbers = _count_and_rows(conn, check.dataset, condition, la_code)
    return CrossCheckFinding(
        dataset=check.dataset,
        column=check.field,
        rule=check.rule,
        description=check.describe(),
        rows=rows,
        row_numbers=numbers,
        target_received=_has_rows(conn, target, la_code),
    )


def _count_and_rows(
    conn: sa.Connection, dataset: str, condition: str, la_code: str
) -> tuple[int, tuple[int, ...]]:
    count = sa.text(f"SELECT count(*) FROM clean.{dataset} d WHERE {condition}")
    listed = sa.text(
        f"SELECT d.row_number FROM clean.{dataset} d WHERE {condition} "
        f"ORDER BY d.row_number LIMIT {ROW_NUMBERS_LISTED}"
    )
    total = int(conn.execute(count, {"la": la_code}).scalar_one())
    numbers = tuple(int(n) for (n,) in conn.execute(listed, {"la": la_code})) if total else ()
    return total, numbers
