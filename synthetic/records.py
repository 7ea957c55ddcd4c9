"""The clean records of one LA before they are written out in that LA's delivery style.

Values are held typed (dates as `date`, flags as `bool`, numbers as numbers) and only turned into
text by the writers, so that each LA can format them its own way. A `str` in a date, flag or
number column is written exactly as it is: that is how a deliberately unreadable value is planted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from schemas.rules import Severity

Cell = str | date | bool | int | float | None


@dataclass(frozen=True)
class Planted:
    """The one problem planted in a row, as the checker should report it."""

    column: str
    rule: str
    severity: Severity


@dataclass
class Row:
    values: dict[str, Cell]
    planted: Planted | None = None


@dataclass
class LaRecords:
    """One LA's records, dataset by dataset, in file order."""

    la_code: str
    la_name: str
    arm: str
    tables: dict[str, list[Row]] = field(default_factory=dict)

    def rows(self, dataset: str) -> list[Row]:
        return self.tables.setdefault(dataset, [])

    def add(self, dataset: str, **values: Cell) -> Row:
        row = Row(dict(values))
        self.rows(dataset).append(row)
        return row


def random_date(rng: random.Random, earliest: date, latest: date) -> date:
    """A date in [earliest, latest], uniformly."""
    return earliest + timedelta(days=rng.randrange((latest - earliest).days + 1))


def age_on(birth: date, when: date) -> int:
    """Age in whole years on `when`."""
    before_birthday = (when.month, when.day) < (birth.month, birth.day)
    return when.year - birth.year - int(before_birthday)


def maybe(rng: random.Random, probability: float) -> bool:
    return rng.random() < probability
