"""The seven datasets of the trial data contract, one module each."""

from schemas.contract import Dataset
from schemas.datasets.csc_events import CSC_EVENTS
from schemas.datasets.episodes import EPISODES
from schemas.datasets.keyworkers import KEYWORKERS
from schemas.datasets.people import PEOPLE
from schemas.datasets.practice_activity import PRACTICE_ACTIVITY
from schemas.datasets.score15 import SCORE15
from schemas.datasets.withdrawals import WITHDRAWALS

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (PEOPLE, EPISODES, CSC_EVENTS, KEYWORKERS, PRACTICE_ACTIVITY, SCORE15, WITHDRAWALS)
}

__all__ = ["DATASETS"]
