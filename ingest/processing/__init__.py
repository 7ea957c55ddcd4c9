"""What happens to one file an LA dropped, with no Dagster in sight.

    take_from_drop      read the listed file, land it encrypted
    take_from_landing   or read a landed file again (re-runs, key rotation, releasing a hold,
                        finishing an `unfinished_submissions` one whose process died)
    process_received    duplicate? -> check (pseudonymise, validate) -> load the warehouse,
                        the blocking checks deciding whether it replaces the current return ->
                        report to the LA -> audit -> empty the file from the inbox

One module per step: `receive`, `decide` (the blocking checks), `process`, `audit`, `report`;
`results` holds what processing returns and `services` what it is given.

The Dagster asset (`ingest.assets.returns`) is a thin wrapper that turns a `SubmissionResult`
into materialisations and check results. Everything returned here is safe to show: counts,
rule and column names, tokens, keyed HMACs and times, never a value from the file and never the
LA's file name.
"""

from ingest.processing.decide import CHECK_DESCRIPTIONS, Check, CheckVerdict, blocking_checks
from ingest.processing.errors import PipelineError
from ingest.processing.process import process_received, rejected_by_rule
from ingest.processing.receive import (
    Received,
    take_from_drop,
    take_from_landing,
    unfinished_submissions,
)
from ingest.processing.results import (
    DatasetResult,
    DatasetStatus,
    SubmissionResult,
    SubmissionStatus,
)
from ingest.processing.services import Services

__all__ = [
    "CHECK_DESCRIPTIONS",
    "Check",
    "CheckVerdict",
    "DatasetResult",
    "DatasetStatus",
    "PipelineError",
    "Received",
    "Services",
    "SubmissionResult",
    "SubmissionStatus",
    "blocking_checks",
    "process_received",
    "rejected_by_rule",
    "take_from_drop",
    "take_from_landing",
    "unfinished_submissions",
]
