"""The Dagster code location of the trial ingestion service (`dg dev`, `trial-ingest ui`).

Built from the settings when it loads (`ingest.settings` lists the variables). The LA
partitions come from TRIAL_ALLOCATION_FILE: after changing that file, reload the code location.
"""

from __future__ import annotations

from collections.abc import Mapping

from dagster import Definitions, definitions

from ingest.assets.allocation import build_trial_allocation
from ingest.assets.partitions import AllocatedLAs, allocated_las
from ingest.assets.quality import build_quality_automation, build_quality_report
from ingest.assets.returns import build_process_return
from ingest.jobs import build_allocation_job, build_return_job
from ingest.resources import build_resources
from ingest.schedules import build_retention_job, build_retention_schedule
from ingest.sensors import build_allocation_automation, build_la_drop_sensor
from ingest.settings import (
    TRIAL_HOME,
    WAREHOUSE_URL,
    ConfigurationError,
    Settings,
    process_environment,
)
from schemas.datasets import DATASETS


def build_definitions(env: Mapping[str, str] | None = None) -> Definitions:
    """The code location for the settings in `env` (default: the process environment).

    Settings that are refused still give a code location: with no partitions, whose sensor's
    ticks fail with the reasons, as with a missing allocation.
    """
    env = process_environment() if env is None else env
    try:
        settings = Settings.from_env(env)
    except ConfigurationError as exc:
        allocated = AllocatedLAs((), str(exc))
        kind = _labelled_kind(env)
    else:
        allocated = allocated_las(settings)
        kind = settings.warehouse_kind
    return_job = build_return_job(list(DATASETS))
    retention_job = build_retention_job()
    return Definitions(
        assets=[
            build_process_return(allocated, kind),
            build_trial_allocation(kind),
            build_quality_report(kind),
        ],
        jobs=[return_job, build_allocation_job(), retention_job],
        schedules=[build_retention_schedule(retention_job)],
        sensors=[
            build_la_drop_sensor(allocated, return_job),
            build_allocation_automation(),
            build_quality_automation(),
        ],
        resources=build_resources(env),
    )


def _labelled_kind(env: Mapping[str, str]) -> str:
    """The warehouse's kind, for the UI's labels, from the two settings that name it."""
    named = {name: env.get(name, "") for name in (TRIAL_HOME, WAREHOUSE_URL)}
    return Settings.from_env(named).warehouse_kind


@definitions
def defs() -> Definitions:
    return build_definitions()
