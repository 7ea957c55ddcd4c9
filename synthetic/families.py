"""Families and what happens to them: people, episodes, social care, SCORE-15, withdrawals."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from schemas import codes
from schemas.contract import TRIAL_END, TRIAL_START
from synthetic import identifiers, lexicon
from synthetic.ids import IdMaker
from synthetic.records import Cell, LaRecords, age_on, maybe, random_date
from synthetic.workforce import EpisodeSpan, Keyworker

CHILD_BORN_FROM = date(2007, 1, 1)  # comfortably under 18 when the trial window opens
CHILD_BORN_BY = date(2025, 6, 30)  # so that no date of birth is in the future
SCHOOL_AGE_BORN_BY = date(2020, 8, 31)
LAST_EPISODE_START = date(2025, 10, 31)
ETHNICITY_WEIGHTS = {
    "WBRI": 60, "WIRI": 2, "WOTH": 6, "WROM": 1, "MWBC": 3, "MWBA": 2, "MWAS": 2, "MOTH": 2,
    "AIND": 3, "APKN": 5, "ABAN": 2, "AOTH": 1, "BCRB": 2, "BAFR": 4, "BOTH": 1, "CHNE": 1,
    "OOTH": 2, "REFU": 1, "NOBT": 1,
}  # fmt: skip
END_REASON_WEIGHTS = (40, 8, 15, 10, 5, 6, 4, 3)  # in the order of codes.END_REASONS


@dataclass(frozen=True)
class Person:
    person_id: str
    role: str
    date_of_birth: date | None
    date_of_death: date | None = None

    def can_answer_score15_on(self, when: date) -> bool:
        if self.date_of_birth is None or self.role == "UNBORN":
            return False
        alive = self.date_of_death is None or self.date_of_death > when
        return alive and age_on(self.date_of_birth, when) >= 12


@dataclass
class Family:
    family_id: str
    members: list[Person] = field(default_factory=list)
    episodes: list[EpisodeSpan] = field(default_factory=list)


@dataclass(frozen=True)
class Household:
    """What the members of one family share in the `people` file."""

    family_id: str
    surname: str
    address: tuple[str | None, str | None, str | None, str | None]
    postcode: str
    ethnicity: str | None


def add_families(
    la: LaRecords,
    rng: random.Random,
    ids: IdMaker,
    workers: list[Keyworker],
    families_per_la: int,
) -> list[Family]:
    areas = rng.sample(lexicon.POSTCODE_AREAS, 2)
    caseholders = [w for w in workers if w.caseholding]
    families = []
    for index in range(families_per_la):
        family = _add_people(la, rng, ids, _new_household(la, rng, ids, areas), accented=index == 0)
        _add_episodes(la, rng, ids, family, caseholders)
        if maybe(rng, 0.25) or index == 0:
            _add_csc_events(la, rng, ids, rng.choice(_csc_subjects(family)))
        _add_score15(la, rng, ids, family, always=index == 0)
        families.append(family)
    _add_withdrawals(la, rng, families)
    return families


def _new_household(la: LaRecords, rng: random.Random, ids: IdMaker, areas: list[str]) -> Household:
    surname = rng.choice(lexicon.ACCENTED_LAST_NAMES if maybe(rng, 0.05) else lexicon.LAST_NAMES)
    if maybe(rng, 0.03):  # no fixed abode
        address: tuple[str | None, ...] = (None, None, None, None)
        postcode = lexicon.NO_FIXED_ABODE_POSTCODE
    else:
        street = f"{rng.randint(1, 180)} {rng.choice(lexicon.STREETS)}"
        if maybe(rng, 0.2):
            street = f"Flat {rng.randint(1, 24)}, {street}"
        locality = rng.choice(lexicon.LOCALITIES) if maybe(rng, 0.6) else None
        address = (street, locality, la.la_name, None)
        postcode = identifiers.new_postcode(rng, rng.choice(areas))
    ethnicity = None if maybe(rng, 0.08) else _weighted(rng, ETHNICITY_WEIGHTS)
    line_1, line_2, line_3, line_4 = address
    return Household(
        ids.new("family"), surname, (line_1, line_2, line_3, line_4), postcode, ethnicity
    )


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(tuple(weights), weights=tuple(weights.values()))[0]


def _add_people(
    la: LaRecords, rng: random.Random, ids: IdMaker, home: Household, *, accented: bool
) -> Family:
    family = Family(home.family_id)
    size = rng.choices((2, 3, 4, 5, 6), weights=(25, 30, 25, 13, 7))[0]
    parents = 2 if maybe(rng, 0.4) and size >= 3 else 1
    roles = ["PARENT_CARER"] * parents
    if size - len(roles) >= 2 and maybe(rng, 0.2):
        roles.append("OTHER_ADULT")
    if size - len(roles) >= 2 and maybe(rng, 0.1):
        roles.append("UNBORN")
    roles += ["CHILD"] * (size - len(roles))
    eldest_parent_born = random_date(rng, date(1972, 1, 1), date(2002, 12, 31))
    for position, role in enumerate(roles):
        person = _add_person(
            la, rng, ids, home, role, eldest_parent_born, accented and position == 0
        )
        family.members.append(person)
    return family


def _add_person(
    la: LaRecords,
    rng: random.Random,
    ids: IdMaker,
    home: Household,
    role: str,
    parent_born: date,
    accented: bool,
) -> Person:
    sex = "F" if maybe(rng, 0.5) else "M"
    if role == "PARENT_CARER" and not accented:
        sex = "F" if maybe(rng, 0.75) else "M"
    born = _date_of_birth(rng, role, parent_born)
    died = None
    if role == "OTHER_ADULT" and born is not None and maybe(rng, 0.05):
        died = random_date(rng, TRIAL_START, date(2025, 10, 31))
    person = Person(ids.new("person"), role, born, died)
    values: dict[str, Cell] = {
        "person_id": person.person_id,
        "family_id": home.family_id,
        "role": role,
        "first_name": None if role == "UNBORN" else _first_name(rng, sex, accented),
        "last_name": home.surname,
        "other_names": rng.choice(lexicon.FIRST_NAMES_F + lexicon.FIRST_NAMES_M)
        if maybe(rng, 0.15) and role != "UNBORN"
        else None,
        "address_line_1": home.address[0],
        "address_line_2": home.address[1],
        "address_line_3": home.address[2],
        "address_line_4": home.address[3],
        "postcode": home.postcode,
        "date_of_birth": born,
        "expected_date_of_birth": random_date(rng, date(2024, 9, 15), date(2026, 2, 28))
        if role == "UNBORN"
        else None,
        "sex": "U" if role == "UNBORN" or maybe(rng, 0.01) else sex,
        "ethnicity": None if role == "UNBORN" else home.ethnicity,
        "nhs_number": identifiers.new_nhs_number(rng)
        if role != "UNBORN" and maybe(rng, 0.92)
        else None,
        "disability": _disability(rng, role),
        "date_of_death": died,
    }
    values.update(_pupil_number(rng, la.la_code, role, born))
    la.add("people", **values)
    return person


def _first_name(rng: random.Random, sex: str, accented: bool) -> str:
    if accented or maybe(rng, 0.04):
        return rng.choice(lexicon.ACCENTED_NAMES_F if sex == "F" else lexicon.ACCENTED_NAMES_M)
    return rng.choice(lexicon.FIRST_NAMES_F if sex == "F" else lexicon.FIRST_NAMES_M)


def _date_of_birth(rng: random.Random, role: str, parent_born: date) -> date | None:
    if role == "UNBORN":
        return None
    if role == "PARENT_CARER":
        return parent_born + timedelta(days=rng.randint(-2000, 0))
    if role == "OTHER_ADULT":
        if maybe(rng, 0.5):  # a grandparent
            return random_date(rng, date(1945, 1, 1), date(1975, 12, 31))
        return random_date(rng, date(1998, 1, 1), date(2006, 6, 30))  # an adult sibling
    earliest = max(CHILD_BORN_FROM, parent_born + timedelta(days=17 * 366))
    return random_date(rng, earliest, CHILD_BORN_BY)


def _pupil_number(
    rng: random.Random, la_code: str, role: str, born: date | None
) -> dict[str, Cell]:
    """A UPN for most school-age children; a reason code for some of the rest."""
    if role != "CHILD" or born is None or born > SCHOOL_AGE_BORN_BY:
        return {"upn": None, "upn_unknown": None}
    if maybe(rng, 0.85):
        upn = identifiers.new_upn(rng, la_code, temporary=maybe(rng, 0.05))
        return {"upn": upn, "upn_unknown": None}
    if maybe(rng, 0.6):
        return {"upn": None, "upn_unknown": rng.choice(codes.UPN_UNKNOWN_CODES)}
    return {"upn": None, "upn_unknown": None}


def _disability(rng: random.Random, role: str) -> str | None:
    if role == "UNBORN":
        return None
    if role == "CHILD" and maybe(rng, 0.15):
        needs = rng.sample(codes.DISABILITIES[1:], rng.randint(1, 2))
        return ";".join(needs)
    return "NONE" if maybe(rng, 0.3) else None


def _add_episodes(
    la: LaRecords, rng: random.Random, ids: IdMaker, family: Family, caseholders: list[Keyworker]
) -> None:
    start = random_date(rng, TRIAL_START, LAST_EPISODE_START)
    while True:
        worker = rng.choice(caseholders)
        end = _add_episode(la, rng, ids, family.family_id, worker, start)
        family.episodes.append(
            EpisodeSpan(family.family_id, worker.keyworker_id, start, end or TRIAL_END)
        )
        if end is None or not maybe(rng, 0.15):
            return
        start = end + timedelta(days=rng.randint(30, 150))
        if start > LAST_EPISODE_START:
            return


def _add_episode(
    la: LaRecords,
    rng: random.Random,
    ids: IdMaker,
    family_id: str,
    worker: Keyworker,
    start: date,
) -> date | None:
    """One episode with its dates in order; returns its end date (None while still open)."""
    assessed = start + timedelta(days=rng.randint(0, 21)) if maybe(rng, 0.9) else None
    planned = (
        assessed + timedelta(days=rng.randint(0, 21)) if assessed and maybe(rng, 0.8) else None
    )
    end: date | None = start + timedelta(days=rng.randint(60, 330))
    if not maybe(rng, 0.75) or (end is not None and end > TRIAL_END):
        end = None
    values: dict[str, Cell] = {
        "episode_id": ids.new("episode"),
        "family_id": family_id,
        "keyworker_id": worker.keyworker_id,
        "team": worker.team if maybe(rng, 0.9) else None,
        "referral_date": start - timedelta(days=rng.randint(0, 28)),
        "referral_source": rng.choice(codes.REFERRAL_SOURCES) if maybe(rng, 0.85) else None,
        "start_date": start,
        "assessment_date": assessed,
        "plan_date": planned,
        "end_date": end,
        "end_reason": rng.choices(codes.END_REASONS, weights=END_REASON_WEIGHTS)[0]
        if end
        else None,
        "notes": rng.choice(lexicon.CASE_NOTES) if maybe(rng, 0.6) else None,
    }
    values.update(_needs(rng, assessed is not None))
    la.add("episodes", **values)
    return end


def _needs(rng: random.Random, assessed: bool) -> dict[str, Cell]:
    """The ten headline needs: known only after an assessment, at least one of them present."""
    if not assessed:
        return {f"need_{need}": None for need in codes.NEEDS}
    present = {need: maybe(rng, 0.3) for need in codes.NEEDS}
    if not any(present.values()):
        present[rng.choice(codes.NEEDS)] = True
    return {f"need_{need}": flag for need, flag in present.items()}


def _csc_subjects(family: Family) -> list[Person]:
    children = [p for p in family.members if p.role == "CHILD"]
    return children or [p for p in family.members if p.role != "UNBORN"]


def _add_csc_events(la: LaRecords, rng: random.Random, ids: IdMaker, person: Person) -> None:
    """A referral and, unless it led nowhere, the social care journey that followed it."""
    referred = random_date(rng, TRIAL_START, date(2025, 9, 30))
    no_further_action = maybe(rng, 0.3)
    _add_event(la, rng, ids, person, "REFERRAL", referred, None, nfa=no_further_action)
    if no_further_action:
        return
    assessed = referred + timedelta(days=rng.randint(1, 10))
    assessment_end = _add_event(la, rng, ids, person, "ASSESSMENT", assessed, rng.randint(10, 45))
    if maybe(rng, 0.4):
        _add_child_protection(la, rng, ids, person, assessed)
    elif maybe(rng, 0.5):
        plan_start = assessment_end or assessed + timedelta(days=5)
        _add_event(la, rng, ids, person, "CIN_PLAN", plan_start, rng.randint(60, 300))
    if maybe(rng, 0.05):
        _add_event(la, rng, ids, person, "CLA", assessed + timedelta(days=rng.randint(5, 60)), None)


def _add_child_protection(
    la: LaRecords, rng: random.Random, ids: IdMaker, person: Person, assessed: date
) -> None:
    enquiry = assessed + timedelta(days=rng.randint(0, 5))
    enquiry_end = _add_event(la, rng, ids, person, "S47", enquiry, rng.randint(5, 15))
    if enquiry_end is None or not maybe(rng, 0.6):
        return
    conference = enquiry_end + timedelta(days=rng.randint(0, 15))
    _add_event(la, rng, ids, person, "ICPC", conference, 0)
    _add_event(la, rng, ids, person, "CP_PLAN", conference, rng.randint(90, 300))


def _add_event(
    la: LaRecords,
    rng: random.Random,
    ids: IdMaker,
    person: Person,
    event_type: str,
    start: date,
    days_open: int | None,
    *,
    nfa: bool = False,
) -> date | None:
    """One event; returns its end date, or None when it is still open at the end of the window."""
    if start > TRIAL_END:
        return None
    end = start + timedelta(days=days_open) if days_open is not None else None
    if end is not None and end > TRIAL_END:
        end = None
    la.add(
        "csc_events",
        event_id=ids.new("event"),
        person_id=person.person_id,
        event_type=event_type,
        start_date=start,
        end_date=end,
        referral_source=rng.choice(codes.REFERRAL_SOURCES) if event_type == "REFERRAL" else None,
        primary_need=rng.choice(codes.PRIMARY_NEEDS) if maybe(rng, 0.7) else None,
        category_of_abuse=rng.choice(codes.ABUSE_CATEGORIES) if event_type == "CP_PLAN" else None,
        reason_for_closure=rng.choice(codes.CLOSURE_REASONS) if end and maybe(rng, 0.5) else None,
        referral_nfa=nfa if event_type == "REFERRAL" and maybe(rng, 0.9) else None,
    )
    return end


def _add_score15(
    la: LaRecords, rng: random.Random, ids: IdMaker, family: Family, *, always: bool
) -> None:
    """SCORE-15 at the start of most episodes and at the close of some, by people aged 12+."""
    for episode in family.episodes:
        if not (always or maybe(rng, 0.7)):
            continue
        baseline = episode.start + timedelta(days=rng.randint(0, 14))
        _add_responses(la, rng, ids, family, "BASELINE", min(baseline, TRIAL_END))
        closed = episode.end < TRIAL_END
        if closed and maybe(rng, 0.2):
            middle = random_date(rng, baseline, episode.end)
            _add_responses(la, rng, ids, family, "MID", middle)
        if closed and maybe(rng, 0.6):
            closing = max(baseline, episode.end - timedelta(days=rng.randint(0, 7)))
            _add_responses(la, rng, ids, family, "CLOSURE", closing)
        follow_up = episode.end + timedelta(days=rng.randint(90, 180))
        if closed and follow_up <= TRIAL_END and maybe(rng, 0.3):
            _add_responses(la, rng, ids, family, "FOLLOW_UP", follow_up)


def _add_responses(
    la: LaRecords, rng: random.Random, ids: IdMaker, family: Family, time_point: str, when: date
) -> None:
    eligible = [p for p in family.members if p.can_answer_score15_on(when)]
    if not eligible:
        return
    for person in rng.sample(eligible, min(len(eligible), rng.randint(1, 2))):
        values: dict[str, Cell] = {
            "response_id": ids.new("response"),
            "family_id": family.family_id,
            "person_id": person.person_id,
            "completed_date": when,
            "time_point": time_point,
        }
        for item in range(1, 16):
            values[f"item_{item:02d}"] = None if maybe(rng, 0.04) else rng.randint(1, 5)
        values["describe_family"] = _sometimes(rng, lexicon.DESCRIBE_FAMILY)
        values["main_problem"] = _sometimes(rng, lexicon.MAIN_PROBLEM)
        values["other_comments"] = _sometimes(rng, lexicon.OTHER_COMMENTS)
        la.add("score15", **values)


def _sometimes(rng: random.Random, sentences: tuple[str, ...]) -> str | None:
    return rng.choice(sentences) if maybe(rng, 0.3) else None


def _add_withdrawals(la: LaRecords, rng: random.Random, families: list[Family]) -> None:
    """A few withdrawals: whole families, or one parent withdrawing themselves."""
    count = max(1, round(len(families) * 0.04))
    for family in rng.sample(families, min(count, len(families))):
        withdrawn = random_date(rng, family.episodes[0].start, TRIAL_END)
        adults = [p for p in family.members if p.role == "PARENT_CARER"]
        if maybe(rng, 0.5):
            la.add(
                "withdrawals", person_id=None, family_id=family.family_id, withdrawal_date=withdrawn
            )
        else:
            who = rng.choice(adults)
            la.add(
                "withdrawals", person_id=who.person_id, family_id=None, withdrawal_date=withdrawn
            )
