"""Withdrawn people and families: left out of every later load, and removed everywhere.

A `withdrawals` return lists the tokens of people and families who have left the trial. Once
loaded, they are logged in `ops.withdrawn` and their rows are removed from every history and
quarantine table of the LA (so from `clean` too); later returns are loaded without them.
Applied whatever the return's received time: a withdrawal is never undone.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import sqlalchemy as sa

from ingest.warehouse.layout import FAMILY_TOKEN, PERSON_TOKEN, WITHDRAWALS, Layout


@dataclass(frozen=True)
class Withdrawn:
    """An LA's withdrawn person and family tokens."""

    persons: list[str]
    families: list[str]

    def left_out_of(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` without the rows of withdrawn people and families."""
        keep = pl.lit(True)
        for column, tokens in ((PERSON_TOKEN, self.persons), (FAMILY_TOKEN, self.families)):
            if tokens and column in frame.columns:
                listed = pl.col(column).is_in(tokens).fill_null(False)
                keep = keep & ~listed
        return frame.filter(keep)


NONE_WITHDRAWN = Withdrawn([], [])


def withdrawn_tokens(conn: sa.Connection, layout: Layout, la_code: str) -> Withdrawn:
    withdrawn = layout.withdrawn
    rows = conn.execute(
        sa.select(withdrawn.c[PERSON_TOKEN], withdrawn.c[FAMILY_TOKEN]).where(
            withdrawn.c.la_code == la_code
        )
    ).all()
    persons = sorted({r[0] for r in rows if r[0] is not None})
    families = sorted({r[1] for r in rows if r[1] is not None})
    return Withdrawn(persons, families)


def record_withdrawals(
    conn: sa.Connection, layout: Layout, la_code: str, submission_id: str
) -> None:
    """Log the withdrawals of a `withdrawals` return (its rows already in history), then
    remove those people and families everywhere."""
    withdrawn = layout.withdrawn
    conn.execute(
        sa.delete(withdrawn).where(
            withdrawn.c.la_code == la_code, withdrawn.c.submission_id == submission_id
        )
    )
    history = layout.history[WITHDRAWALS]
    columns = ["la_code", PERSON_TOKEN, FAMILY_TOKEN, "withdrawal_date", "submission_id"]
    conn.execute(
        sa.insert(withdrawn).from_select(
            columns,
            sa.select(*(history.c[c] for c in columns)).where(
                history.c.la_code == la_code, history.c.submission_id == submission_id
            ),
        )
    )
    for dataset, stored in layout.stored.items():
        if dataset == WITHDRAWALS:
            continue
        for tables in (layout.history, layout.quarantine):
            _purge_withdrawn(conn, layout, tables[dataset], stored, la_code)


def _purge_withdrawn(
    conn: sa.Connection,
    layout: Layout,
    target: sa.Table,
    stored: dict[str, pl.DataType],
    la_code: str,
) -> None:
    withdrawn = layout.withdrawn
    matches = [
        target.c[column].in_(
            sa.select(withdrawn.c[column]).where(
                withdrawn.c.la_code == la_code, withdrawn.c[column].is_not(None)
            )
        )
        for column in (PERSON_TOKEN, FAMILY_TOKEN)
        if column in stored
    ]
    if matches:
        conn.execute(sa.delete(target).where(target.c.la_code == la_code, sa.or_(*matches)))
