"""The service's jobs, the run tags they carry and the run config that names a return.

`ingest_return` processes one file for one LA partition: the sensor's runs name it by the drop
fingerprint; a data engineer reprocesses a landed file by its submission id (after a key
rotation, a schema fix, or to release a return that a blocking check held back).
"""

from __future__ import annotations

from typing import Any, TypeAlias

from dagster import AssetKey, AssetSelection, define_asset_job

# Dagster has no public name for the type `define_asset_job` returns (the sensor takes one).
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

AssetJob: TypeAlias = UnresolvedAssetJobDefinition  # a job of assets, as `define_asset_job` makes

RETURN_JOB = "ingest_return"
ALLOCATION_JOB = "load_allocation"
PROCESS_RETURN_OP = "process_return"

# The run tags the service sets: the LA (from the allocation), the drop file's keyed
# fingerprint, and the submission id (a keyed HMAC of the content) once the file has landed.
LA_TAG = "trial/la"
DROP_OBJECT_TAG = "trial/drop_object"
SUBMISSION_TAG = "trial/submission"
# And on a run `trial-ingest run` executes in its own process: the host and process id, so a
# later `run` can tell that run's process is gone (killed) and mark it failed.
RUNNER_TAG = "trial/runner"

CLEAN_PREFIX = "clean"
ALLOCATION_KEY = AssetKey(["trial", "allocation"])


def clean_asset_key(dataset: str) -> AssetKey:
    return AssetKey([CLEAN_PREFIX, dataset])


def return_run_config(
    *, fingerprint: str = "", submission_id: str = "", release_held: bool = False
) -> dict[str, Any]:
    """Run config for `ingest_return`: a drop file by fingerprint, or a landed file by id."""
    config = {
        "fingerprint": fingerprint,
        "submission_id": submission_id,
        "release_held": release_held,
    }
    return {"ops": {PROCESS_RETURN_OP: {"config": config}}}


def build_return_job(datasets: list[str]) -> AssetJob:
    return define_asset_job(
        RETURN_JOB,
        selection=AssetSelection.assets(*(clean_asset_key(d) for d in datasets)),
        description="Process one LA file: land it, check it, report to the LA, load the warehouse.",
    )


def build_allocation_job() -> AssetJob:
    return define_asset_job(
        ALLOCATION_JOB,
        selection=AssetSelection.assets(ALLOCATION_KEY),
        description="Load the evaluator's trial allocation into trial.allocation.",
    )
