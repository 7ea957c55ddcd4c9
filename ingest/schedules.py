"""The retention job and its daily schedule (see `ingest.retention`).

The job uses the same `landing` and `warehouse` resources as the return job. Its run shows
counts only: files deleted, failures, and the retention period in days.
"""

from datetime import UTC, datetime

from dagster import (
    DefaultScheduleStatus,
    Failure,
    JobDefinition,
    OpExecutionContext,
    Output,
    ScheduleDefinition,
    job,
    op,
)

from ingest.resources import LandingResource, ServiceSettings, WarehouseResource

RETENTION_JOB = "apply_retention"
RETENTION_SCHEDULE = "daily_retention"
RETENTION_CRON = "30 2 * * *"  # daily, at a quiet hour (UTC)


@op(name="delete_expired_raw_files")
def delete_expired_raw_files(
    context: OpExecutionContext,
    landing: LandingResource,
    warehouse: WarehouseResource,
    settings: ServiceSettings,
) -> Output[None]:
    """Delete landed raw files older than TRIAL_RETENTION_DAYS; log each in ops.retention_log."""
    from ingest.retention import apply_retention

    days = settings.get().retention_days
    result = apply_retention(
        landing.get(), warehouse.get(), now=datetime.now(UTC), retention_days=days
    )
    metadata = {**result.counts, "retention_days": days}
    context.log.info(
        f"retention: {result.counts['deleted']} raw file(s) deleted, "
        f"{result.counts['failed']} failed"
    )
    if result.failed:
        raise Failure(
            description=f"{len(result.failed)} raw file(s) could not be deleted; "
            "the next run retries them",
            metadata=metadata,
        )
    return Output(None, metadata=metadata)


def build_retention_job() -> JobDefinition:
    @job(
        name=RETENTION_JOB,
        description="Delete landed raw files older than the retention period and log each.",
    )
    def apply_retention_job() -> None:
        delete_expired_raw_files()

    return apply_retention_job


def build_retention_schedule(retention_job: JobDefinition) -> ScheduleDefinition:
    return ScheduleDefinition(
        name=RETENTION_SCHEDULE,
        job=retention_job,
        cron_schedule=RETENTION_CRON,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="Runs the retention job once a day.",
    )
