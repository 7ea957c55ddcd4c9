"""A whole synthetic trial: the allocation, every LA's drop, and the manifest of its problems."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from schemas import codes
from synthetic import lexicon
from synthetic.delivery import Delivery, choose_deliveries
from synthetic.families import add_families
from synthetic.ids import IdMaker
from synthetic.manifest import (
    ALLOCATION_FILE,
    DROP_FOLDER,
    AllocationEntry,
    DropFile,
    PlantedIssue,
    TrialManifest,
)
from synthetic.problems import plant_problems
from synthetic.records import LaRecords, random_date
from synthetic.workforce import add_keyworkers, add_practice_activity
from synthetic.writers import write_drop

# DfE LA numbers run to the 800s; the 900s are unused, so these can never be a real council.
LA_CODES = tuple(f"{901 + index}" for index in range(len(lexicon.LA_NAMES)))
ALLOCATION_HEADER = ("la_code", "la_name", "arm", "randomised_on")


@dataclass(frozen=True)
class SyntheticTrial:
    """The whole trial in memory, before it is written: what `generate_trial` writes out."""

    allocation: list[AllocationEntry]
    deliveries: dict[str, Delivery]
    las: list[LaRecords]


def build_trial(*, seed: int, families_per_la: int = 40, mess: bool = True) -> SyntheticTrial:
    """Every LA's records in its delivery style, with the problems planted when `mess`."""
    if families_per_la < 1:
        raise ValueError("families_per_la must be at least 1")
    rng = random.Random(seed)
    allocation = allocate(rng)
    deliveries = choose_deliveries(rng, list(LA_CODES), mess=mess)
    las = [
        build_la_records(entry, families_per_la, deliveries[entry.la_code], seed=seed)
        for entry in allocation
    ]
    if mess:
        plant_problems(las, rng)
    return SyntheticTrial(allocation, deliveries, las)


def generate_trial(
    out_dir: Path, *, seed: int, families_per_la: int = 40, mess: bool = True
) -> TrialManifest:
    """Write a trial under `out_dir`: `allocation.csv`, `drop/<la_code>/…` and `manifest.json`.

    The same arguments always write byte-identical files. `mess` adds the delivery habits the
    service must cope with and plants the problems listed in the manifest; without it every file
    is a plain, valid UTF-8 CSV.
    """
    trial = build_trial(seed=seed, families_per_la=families_per_la, mess=mess)
    _refuse_existing_drop(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_allocation(out_dir / ALLOCATION_FILE, trial.allocation)
    files: list[DropFile] = []
    issues: list[PlantedIssue] = []
    for la in trial.las:
        la_files, la_issues = write_drop(la, trial.deliveries[la.la_code], out_dir)
        files += la_files
        issues += la_issues
    manifest = TrialManifest(
        seed=seed,
        families_per_la=families_per_la,
        mess=mess,
        allocation=tuple(trial.allocation),
        files=tuple(files),
        issues=tuple(sorted(issues, key=_issue_order)),
    )
    manifest.write(out_dir)
    return manifest


def _refuse_existing_drop(out_dir: Path) -> None:
    """Never mix a new trial with files left by an earlier one (and never delete them)."""
    drop = out_dir / DROP_FOLDER
    if drop.exists() and any(drop.iterdir()):
        raise FileExistsError("the output folder already holds a drop; choose an empty folder")


def _issue_order(issue: PlantedIssue) -> tuple[str, str, str, int, str]:
    return (issue.la_code, issue.path, issue.dataset, issue.row_number, issue.column)


def allocate(rng: random.Random) -> list[AllocationEntry]:
    """Six LAs to each arm, at random, all randomised on one day before the trial opens."""
    systemic = set(rng.sample(LA_CODES, len(LA_CODES) // 2))
    randomised_on = random_date(rng, date(2024, 6, 3), date(2024, 7, 26))
    return [
        AllocationEntry(
            la_code=code,
            la_name=name,
            arm=codes.ARMS[0] if code in systemic else codes.ARMS[1],
            randomised_on=randomised_on,
        )
        for code, name in zip(LA_CODES, lexicon.LA_NAMES, strict=True)
    ]


def write_allocation(path: Path, allocation: list[AllocationEntry]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(ALLOCATION_HEADER)
    for entry in allocation:
        writer.writerow((entry.la_code, entry.la_name, entry.arm, entry.randomised_on.isoformat()))
    path.write_text(buffer.getvalue(), encoding="utf-8")


def build_la_records(
    entry: AllocationEntry, families_per_la: int, delivery: Delivery, *, seed: int
) -> LaRecords:
    """One LA's clean records; its own random stream, so LAs do not shift one another."""
    rng = random.Random(f"{seed}:{entry.la_code}")
    ids = IdMaker(delivery.id_style, rng)
    la = LaRecords(entry.la_code, entry.la_name, entry.arm)
    workers = add_keyworkers(la, rng, ids, families_per_la)
    families = add_families(la, rng, ids, workers, families_per_la)
    spans = [span for family in families for span in family.episodes]
    add_practice_activity(la, rng, ids, workers, spans)
    return la
