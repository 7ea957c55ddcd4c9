"""What a synthetic trial holds: test and demo metadata written beside the drop, never in it.

The manifest names files, datasets, row numbers, canonical columns and rule names: no value from
any file, so it is as safe to print as a checker's report.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any

MANIFEST_FILE = "manifest.json"
ALLOCATION_FILE = "allocation.csv"
DROP_FOLDER = "drop"


@dataclass(frozen=True)
class AllocationEntry:
    la_code: str
    la_name: str
    arm: str
    randomised_on: date


@dataclass(frozen=True)
class DropFile:
    """One file an LA dropped: which datasets it holds and how many data rows each has."""

    la_code: str
    path: str  # relative to the trial folder, '/'-separated: drop/<la_code>/<file name>
    datasets: tuple[str, ...]
    rows: dict[str, int]
    sheets: dict[str, str]  # dataset -> sheet name, for a workbook; empty for a CSV

    @property
    def file_name(self) -> str:
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class PlantedIssue:
    """A problem planted on purpose, as a correct checker reports it."""

    la_code: str
    path: str  # as in `DropFile.path`
    dataset: str
    sheet: str  # "" for a CSV
    row_number: int  # as a spreadsheet shows it: the header is row 1
    column: str  # canonical field name
    rule: str  # a rule name from schemas/rules.py or a RowRule's `.rule`
    severity: str  # schemas.rules.Severity value

    @property
    def file_name(self) -> str:
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class TrialManifest:
    seed: int
    families_per_la: int
    mess: bool
    allocation: tuple[AllocationEntry, ...]
    files: tuple[DropFile, ...]
    issues: tuple[PlantedIssue, ...]

    def files_of(self, la_code: str) -> tuple[DropFile, ...]:
        return tuple(f for f in self.files if f.la_code == la_code)

    def issues_in(self, path: str) -> tuple[PlantedIssue, ...]:
        return tuple(i for i in self.issues if i.path == path)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=_encode) + "\n"

    def write(self, trial_dir: Path) -> Path:
        target = trial_dir / MANIFEST_FILE
        target.write_text(self.to_json(), encoding="utf-8")
        return target

    @classmethod
    def from_json(cls, text: str) -> TrialManifest:
        raw = json.loads(text)
        return cls(
            seed=raw["seed"],
            families_per_la=raw["families_per_la"],
            mess=raw["mess"],
            allocation=tuple(
                AllocationEntry(
                    la_code=a["la_code"],
                    la_name=a["la_name"],
                    arm=a["arm"],
                    randomised_on=date.fromisoformat(a["randomised_on"]),
                )
                for a in raw["allocation"]
            ),
            files=tuple(
                DropFile(
                    la_code=f["la_code"],
                    path=f["path"],
                    datasets=tuple(f["datasets"]),
                    rows=dict(f["rows"]),
                    sheets=dict(f["sheets"]),
                )
                for f in raw["files"]
            ),
            issues=tuple(PlantedIssue(**i) for i in raw["issues"]),
        )

    @classmethod
    def load(cls, trial_dir: Path) -> TrialManifest:
        return cls.from_json((trial_dir / MANIFEST_FILE).read_text(encoding="utf-8"))


def _encode(value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(type(value).__name__)
