"""`trial-ingest release`: load a held return after a person has looked at it and accepts it."""

from __future__ import annotations

from collections.abc import Mapping

from ingest.instance import RunnerError, service_environment, service_instance, service_settings
from ingest.outcomes import FileOutcome
from ingest.runner import check_configuration, execute_request, warehouse_at
from ingest.settings import Settings, process_environment
from pseudonymise.la_code import is_la_code


def release_held(submission_id: str, env: Mapping[str, str] | None = None) -> FileOutcome:
    """Run `ingest_return` on a held submission with `release_held`, as the UI's launchpad would:
    a person has looked at it and accepts it; its rows then replace the LA's earlier return."""
    from dagster import RunRequest

    from ingest.jobs import LA_TAG, SUBMISSION_TAG, return_run_config

    env = process_environment() if env is None else env
    settings = service_settings(env)
    env = service_environment(env, settings)
    check_configuration(settings)
    la_code = _held_submission_la(submission_id, settings)
    request = RunRequest(
        partition_key=la_code,
        run_config=return_run_config(submission_id=submission_id, release_held=True),
        tags={LA_TAG: la_code, SUBMISSION_TAG: submission_id},
    )
    with service_instance(env, settings) as (defs, instance):
        return execute_request(defs, instance, request, settings)


def _held_submission_la(submission_id: str, settings: Settings) -> str:
    """The submission's LA, when the submission's latest processing held it."""
    la_code = submission_id.split("-", 1)[0]
    if not is_la_code(la_code):
        raise RunnerError("a submission id starts with its three-digit LA code")
    warehouse = warehouse_at(settings)
    try:
        rows = [r for r in warehouse.submissions(la_code) if r.submission_id == submission_id]
    finally:
        warehouse.dispose()
    latest = max(rows, key=lambda r: r.processed_at).receipt_id if rows else None
    if not any(r.status == "held" for r in rows if r.receipt_id == latest):
        raise RunnerError(f"submission {submission_id} is not held")
    return la_code
