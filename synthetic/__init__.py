"""Synthetic trial data: twelve fictional LAs' returns, messy as real ones, with planted problems.

Every name, place and identifier is invented; NHS numbers come from the 999 test range and LA
codes from the unused 9xx range. Nothing here is, or is derived from, real data.
"""

from synthetic.bulk import write_people_csv
from synthetic.manifest import AllocationEntry, DropFile, PlantedIssue, TrialManifest
from synthetic.trial import generate_trial

__all__ = [
    "AllocationEntry",
    "DropFile",
    "PlantedIssue",
    "TrialManifest",
    "generate_trial",
    "write_people_csv",
]
