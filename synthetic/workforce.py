"""Key workers and their practice activity (the fidelity record) for one LA."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import date

from schemas import codes
from schemas.contract import TRIAL_END, TRIAL_START
from synthetic import lexicon
from synthetic.ids import IdMaker
from synthetic.records import LaRecords, maybe, random_date

CASEHOLDING_ROLES = ("KEYWORKER", "SENIOR_KEYWORKER", "SYSTEMIC_PRACTITIONER", "SYSTEMIC_CHAMPION")
FAMILY_ACTIVITIES = ("GENOGRAM", "ONE_TO_ONE_CONSULTATION", "OUTCOME_MEASURE_REVIEW")


@dataclass(frozen=True)
class Keyworker:
    keyworker_id: str
    team: str
    role: str
    leaver: bool  # left before the extract; nothing else refers to a leaver

    @property
    def caseholding(self) -> bool:
        return not self.leaver and self.role != "TEAM_MANAGER"


def add_keyworkers(
    la: LaRecords, rng: random.Random, ids: IdMaker, families_per_la: int
) -> list[Keyworker]:
    """10-20 workers at the default size (more for bigger LAs): managers, case holders, leavers.

    Leavers are never referred to by episodes or activity: they are the rows a planted problem
    may reject without leaving orphans behind.
    """
    teams = [
        f"{la.la_name} {suffix}" for suffix in rng.sample(lexicon.TEAM_SUFFIXES, rng.randint(2, 3))
    ]
    headcount = max(10, round(rng.randint(10, 20) * families_per_la / 40))
    leavers = rng.randint(2, 3)
    workers: list[Keyworker] = []
    for index in range(headcount):
        team = teams[index % len(teams)]
        role = "TEAM_MANAGER" if index < len(teams) else _caseholding_role(rng, la.arm)
        leaver = index >= headcount - leavers
        worker = Keyworker(ids.new("keyworker"), team, role, leaver)
        _add_keyworker_row(la, rng, worker)
        workers.append(worker)
    return workers


def _caseholding_role(rng: random.Random, arm: str) -> str:
    if arm == "SYSTEMIC":
        return rng.choices(CASEHOLDING_ROLES, weights=(5, 2, 2, 1))[0]
    return rng.choices(CASEHOLDING_ROLES[:2], weights=(4, 1))[0]


def _add_keyworker_row(la: LaRecords, rng: random.Random, worker: Keyworker) -> None:
    first = rng.choice(lexicon.FIRST_NAMES_F + lexicon.FIRST_NAMES_M)
    last = rng.choice(lexicon.LAST_NAMES)
    start = random_date(rng, date(2012, 1, 1), date(2024, 8, 1))
    la.add(
        "keyworkers",
        keyworker_id=worker.keyworker_id,
        first_name=first,
        last_name=last,
        email=_work_email(first, last, la.la_name),
        phone=f"01632 960{rng.randrange(1000):03d}",  # Ofcom's range for drama
        team=worker.team,
        role=worker.role,
        fte=rng.choice((1.0, 1.0, 1.0, 0.8, 0.6, 0.5)) if maybe(rng, 0.95) else None,
        start_date=start,
        end_date=random_date(rng, date(2025, 1, 1), date(2025, 11, 30)) if worker.leaver else None,
        social_work_qualified=maybe(rng, 0.3) if maybe(rng, 0.9) else None,
        systemic_training=_training_level(rng, la.arm, worker.role),
    )


def _work_email(first: str, last: str, la_name: str) -> str:
    local = re.sub(r"[^a-z.]", "", f"{first}.{last}".lower())
    domain = re.sub(r"[^a-z]+", "-", la_name.lower())
    return f"{local}@{domain}.example.gov.uk"


def _training_level(rng: random.Random, arm: str, role: str) -> str | None:
    if maybe(rng, 0.1):
        return None
    if arm == "CONTROL":
        return rng.choices(codes.SYSTEMIC_TRAINING_LEVELS, weights=(12, 2, 1, 0))[0]
    if role.startswith("SYSTEMIC"):
        return rng.choice(("INTERMEDIATE", "QUALIFIED"))
    return rng.choices(codes.SYSTEMIC_TRAINING_LEVELS, weights=(1, 6, 3, 1))[0]


@dataclass(frozen=True)
class EpisodeSpan:
    """What practice activity about one family needs to know of its episode."""

    family_id: str
    keyworker_id: str
    start: date
    end: date


def add_practice_activity(
    la: LaRecords,
    rng: random.Random,
    ids: IdMaker,
    workers: list[Keyworker],
    episodes: list[EpisodeSpan],
) -> None:
    """Team activity for every worker still in post, and activity about families in episodes."""
    systemic = la.arm == "SYSTEMIC"
    for worker in (w for w in workers if not w.leaver):
        if systemic:
            for _ in range(rng.randint(1, 3)):
                _add_activity(la, rng, ids, worker.keyworker_id, "SYSTEMIC_TRAINING_DAY", None)
        group_sessions = rng.randint(2, 6) if systemic else rng.randint(0, 2)
        for _ in range(group_sessions):
            _add_activity(la, rng, ids, worker.keyworker_id, "GROUP_REFLECTIVE_PRACTICE", None)
        if systemic and maybe(rng, 0.3):
            _add_activity(la, rng, ids, worker.keyworker_id, "HUB_EVENT", None)
    for episode in episodes:
        if maybe(rng, 0.6 if systemic else 0.2):
            kind = rng.choice(FAMILY_ACTIVITIES if systemic else FAMILY_ACTIVITIES[2:])
            when = random_date(rng, episode.start, episode.end)
            _add_activity(la, rng, ids, episode.keyworker_id, kind, episode.family_id, when)
    if not la.rows("practice_activity"):  # an empty return would be rejected whole
        first = next(w for w in workers if not w.leaver)
        _add_activity(la, rng, ids, first.keyworker_id, "GROUP_REFLECTIVE_PRACTICE", None)


def _add_activity(
    la: LaRecords,
    rng: random.Random,
    ids: IdMaker,
    keyworker_id: str,
    activity_type: str,
    family_id: str | None,
    when: date | None = None,
) -> None:
    if when is None:
        when = random_date(rng, TRIAL_START, TRIAL_END)
    if activity_type.endswith("TRAINING_DAY"):
        minutes: int | None = rng.choice((360, 390, 420))
    else:
        minutes = rng.randrange(30, 181, 15)
    la.add(
        "practice_activity",
        activity_id=ids.new("activity"),
        keyworker_id=keyworker_id,
        activity_type=activity_type,
        activity_date=min(max(when, TRIAL_START), TRIAL_END),
        duration_minutes=minutes if maybe(rng, 0.9) else None,
        family_id=family_id,
    )
