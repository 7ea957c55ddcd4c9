"""Verifying a rebuilt warehouse against the one in use: current returns, row counts per LA x
dataset x submission, the audit's outcomes, withdrawals, and only the new key on stored rows.
Differences are named by LA and dataset only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import sqlalchemy as sa

from ingest.rotation.errors import RotationVerificationFailed
from ingest.rotation.plan import RotationPlan, receipt_of
from ingest.warehouse import Warehouse
from schemas.datasets import DATASETS


def data_tables(warehouse: Warehouse) -> Iterable[tuple[str, str, sa.Table]]:
    """Every table of rows: (kind, dataset, table) for clean, history and quarantine."""
    for dataset in DATASETS:
        yield "clean", dataset, warehouse.table("clean", dataset)
        yield "history", dataset, warehouse.table("history", dataset)
        yield "quarantine", dataset, warehouse.table("ops", f"quarantine_{dataset}")


def _grouped_counts(warehouse: Warehouse) -> Counter[tuple[str, str, str, str]]:
    """Rows per (table kind, dataset, LA, submission)."""
    counts: Counter[tuple[str, str, str, str]] = Counter()
    with warehouse.engine.connect() as conn:
        for kind, dataset, table in data_tables(warehouse):
            query = sa.select(table.c.la_code, table.c.submission_id, sa.func.count()).group_by(
                table.c.la_code, table.c.submission_id
            )
            for la_code, submission_id, n in conn.execute(query):
                counts[(kind, dataset, la_code, submission_id)] = int(n)
    return counts


def stored_key_ids(warehouse: Warehouse) -> set[str]:
    """Every key id found on a stored row."""
    found: set[str] = set()
    with warehouse.engine.connect() as conn:
        for _, _, table in data_tables(warehouse):
            found.update(r[0] for r in conn.execute(sa.select(table.c.key_id).distinct()))
    return found


def _withdrawn_counts(warehouse: Warehouse) -> dict[str, tuple[int, int]]:
    table = warehouse.table("ops", "withdrawn")
    query = sa.select(
        table.c.la_code,
        sa.func.count(sa.distinct(table.c.person_token)),
        sa.func.count(sa.distinct(table.c.family_token)),
    ).group_by(table.c.la_code)
    with warehouse.engine.connect() as conn:
        return {la: (int(p), int(f)) for la, p, f in conn.execute(query)}


def row_totals(warehouse: Warehouse) -> dict[str, int]:
    """Rows per kind of table: clean, history, quarantine."""
    totals: Counter[str] = Counter()
    for (kind, *_), n in _grouped_counts(warehouse).items():
        totals[kind] += n
    return dict(totals)


def verify(old: Warehouse, new: Warehouse, new_key_id: str, plan: RotationPlan) -> None:
    """The new warehouse holds what the old one held, under the new key only.

    Returns lost to retention (allowed) are left out of the comparison; withdrawn people must
    not be fewer, so a lost withdrawals return cannot bring anyone back.
    """
    problems: list[str] = []
    lost_submissions = {r.submission_id for r in plan.lost}
    lost_pairs = {(r.la_code, r.dataset) for r in plan.lost}
    problems += _compare_current_returns(old, new, lost_pairs)
    problems += _compare_counts(old, new, lost_submissions, lost_pairs)
    foreign = stored_key_ids(new) - {new_key_id}
    if foreign:
        problems.append(f"{len(foreign)} other key id(s) found on stored rows")
    problems += _compare_audit(old, new, plan)
    problems += _compare_withdrawn(old, new, exact=not plan.lost)
    if problems:
        raise RotationVerificationFailed(
            "the rebuilt warehouse does not match the one in use, so it was not swapped in: "
            + "; ".join(problems)
        )


def _compare_current_returns(
    old: Warehouse, new: Warehouse, lost_pairs: set[tuple[str, str | None]]
) -> list[str]:
    def current(warehouse: Warehouse) -> dict[tuple[str, str], str]:
        return {
            (c.la_code, c.dataset): c.submission_id
            for c in warehouse.current_returns()
            if (c.la_code, c.dataset) not in lost_pairs
        }

    before, after = current(old), current(new)
    differing = sorted(
        f"{la} x {ds}"
        for la, ds in before.keys() | after.keys()
        if before.get((la, ds)) != after.get((la, ds))
    )
    return [f"current return differs for {', '.join(differing)}"] if differing else []


def _compare_counts(
    old: Warehouse,
    new: Warehouse,
    lost_submissions: set[str],
    lost_pairs: set[tuple[str, str | None]],
) -> list[str]:
    def kept(counts: Counter[tuple[str, str, str, str]]) -> Counter[tuple[str, str, str, str]]:
        return Counter(
            {
                key: n
                for key, n in counts.items()
                if key[3] not in lost_submissions
                and not (key[0] == "clean" and (key[2], key[1]) in lost_pairs)
            }
        )

    before, after = kept(_grouped_counts(old)), kept(_grouped_counts(new))
    differing = sorted(
        {
            f"{kind} {la} x {ds}"
            for kind, ds, la, sid in before.keys() | after.keys()
            if before[(kind, ds, la, sid)] != after[(kind, ds, la, sid)]
        }
    )
    return [f"row counts differ for {', '.join(differing)}"] if differing else []


def _compare_audit(old: Warehouse, new: Warehouse, plan: RotationPlan) -> list[str]:
    replayed = {receipt_of(f) for f in plan.replay}
    lost_pairs = {(r.la_code, r.dataset) for r in plan.lost}

    def outcomes(warehouse: Warehouse) -> dict[tuple[str, str | None], tuple[str, str | None]]:
        return {
            (r.receipt_id, r.dataset): (str(r.status), r.reason)
            for r in warehouse.submissions()
            if r.receipt_id in replayed and (r.la_code, r.dataset) not in lost_pairs
        }

    before, after = outcomes(old), outcomes(new)
    differing = sum(1 for key in before.keys() | after.keys() if before.get(key) != after.get(key))
    return [f"{differing} audit outcome(s) differ"] if differing else []


def _compare_withdrawn(old: Warehouse, new: Warehouse, *, exact: bool) -> list[str]:
    before, after = _withdrawn_counts(old), _withdrawn_counts(new)
    problems = []
    for la_code in sorted(before.keys() | after.keys()):
        was, now = before.get(la_code, (0, 0)), after.get(la_code, (0, 0))
        fewer = now[0] < was[0] or now[1] < was[1]
        if fewer or (exact and now != was):
            problems.append(f"withdrawn people or families of LA {la_code} differ")
    return problems
