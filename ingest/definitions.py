"""The Dagster code location of the trial ingestion service (`dg dev`, `trial-ingest ui`).

Built from the environment when it loads (see `ingest.resources` for the variables). The LA
partitions come from TRIAL_ALLOCATION_FILE: after changing that file, reload the code location.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from dagster import Definitions, definitions

from ingest.assets.allocation import build_trial_allocation
from ingest.assets.partitions import allocated_las
from ingest.assets.quality import build_quality_automation, build_quality_report
from ingest.assets.returns import build_process_return
from ingest.jobs import build_allocation_job, build_return_job
from ingest.resources import build_resources, warehouse_kind
from ingest.schedules import build_retention_job, build_retention_schedule
from ingest.sensors import build_allocation_automation, build_la_drop_sensor
from schemas.datasets import DATASETS


def build_definitions(env: Mapping[str, str] | None = None) -> Definitions:
    env = os.environ if env is None else env
    allocated = allocated_las(env)
    return_job = build_return_job(list(DATASETS))
    kind = warehouse_kind(env)
    retention_job = build_retention_job()
    return Definitions(
        assets=[
            build_process_return(allocated, kind),
            build_trial_allocation(kind),
            build_quality_report(kind, env),
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


@definitions
def defs() -> Definitions:
    return build_definitions()
