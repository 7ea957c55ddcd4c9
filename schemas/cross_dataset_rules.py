"""Checks across an LA's datasets (the spec's "Checks across datasets"), declared as data.

They never reject rows: datasets arrive at different times, so an episode whose family is not
(yet) in `people` is counted, reported to the LA and shown as a warning. They run in the
warehouse, on tokens, after each load (`ingest/warehouse/cross_check_queries.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.datasets import DATASETS


@dataclass(frozen=True)
class CrossCheckFinding:
    """Rows of an LA's current return that break one cross-dataset check: counts only."""

    dataset: str
    column: str
    rule: str
    description: str
    rows: int
    row_numbers: tuple[int, ...]  # the first few, in the LA's current return of `dataset`
    target_received: bool  # False: the dataset referred to has no accepted return yet


@dataclass(frozen=True)
class Reference:
    """`dataset.field` should name a record of `target.target_field` in the same LA."""

    dataset: str
    field: str
    target: str
    target_field: str

    @property
    def rule(self) -> str:
        return f"orphan_{self.field}"

    @property
    def column(self) -> str:
        return DATASETS[self.dataset].field(self.field).stored_name

    @property
    def target_column(self) -> str:
        return DATASETS[self.target].field(self.target_field).stored_name

    def describe(self) -> str:
        return f"`{self.dataset}.{self.field}` matches a `{self.target_field}` in `{self.target}`"


@dataclass(frozen=True)
class MinimumAge:
    """The person in `dataset.field` is at least `years` old on `dataset.on_field`.

    `people` holds only the month of birth, so the check uses the first day of that month: a
    respondent it flags is under age whatever their day of birth.
    """

    dataset: str
    field: str
    on_field: str
    years: int

    @property
    def rule(self) -> str:
        return f"under_{self.years}_on_{self.on_field}"

    @property
    def column(self) -> str:
        return DATASETS[self.dataset].field(self.field).stored_name

    def describe(self) -> str:
        who = f"`{self.dataset}.{self.field}`"
        return f"the person in {who} is {self.years} or over on `{self.on_field}`"


REFERENCES = (
    Reference("episodes", "family_id", "people", "family_id"),
    Reference("episodes", "keyworker_id", "keyworkers", "keyworker_id"),
    Reference("csc_events", "person_id", "people", "person_id"),
    Reference("practice_activity", "keyworker_id", "keyworkers", "keyworker_id"),
    Reference("practice_activity", "family_id", "people", "family_id"),
    Reference("score15", "person_id", "people", "person_id"),
    Reference("score15", "family_id", "people", "family_id"),
)

MINIMUM_AGES = (MinimumAge("score15", "person_id", "completed_date", 12),)
