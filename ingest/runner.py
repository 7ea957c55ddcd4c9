"""`trial-ingest run`: everything new on the drop processed once, then exit.

Through the same definitions and instance as the UI (so its runs show there): load the
allocation, evaluate `la_drop_sensor` once, then execute each requested run in turn and read
what became of its file from the audit table. Settings come from `ingest.settings`; the
instance is prepared by `ingest.instance`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Mapping, Set
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.instance import RunnerError, service_environment, service_instance, service_settings
from ingest.outcomes import FileOutcome, RunSummary
from ingest.settings import DROP_URL, LANDING_URL, Settings, process_environment

if TYPE_CHECKING:
    from dagster import DagsterInstance, Definitions, RunRequest

    from ingest.warehouse import SubmissionRecord, Warehouse

# Runs still log everything to the event log (the UI); the terminal gets warnings and errors.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
VERBOSE_CONSOLE = {"loggers": {"console": {"config": {"log_level": "DEBUG"}}}}


def run_once(
    env: Mapping[str, str] | None = None,
    *,
    verbose: bool = False,
    on_file: Callable[[FileOutcome], None] | None = None,
) -> RunSummary:
    """Load the allocation, take every new file on the drop, one run each, then return.

    `on_file` is told of each file as its run ends; `verbose` shows Dagster's own events on the
    terminal (they are always in the event log, for the UI).
    """
    env = process_environment() if env is None else env
    settings = service_settings(env)
    env = service_environment(env, settings)
    check_configuration(settings)
    console = VERBOSE_CONSOLE if verbose else QUIET_CONSOLE
    files: list[FileOutcome] = []
    with service_instance(env, settings) as (defs, instance):
        load_allocation(defs, instance, console=console)

        def execute(requests: list[RunRequest]) -> None:
            for request in requests:
                outcome = execute_request(defs, instance, request, settings, console=console)
                files.append(outcome)
                if on_file is not None:
                    on_file(outcome)

        with sqlite_storage_held_open(settings.dagster_home), _warehouse_held_open(settings):
            busy = settle_unfinished_runs(instance)
            # What a killed process left first: its files then leave the inbox, and are not
            # among the new files the sensor finds.
            execute(unfinished_runs(settings, busy))
            requests, note = requested_runs(defs, instance)
            execute(requests)
    return RunSummary(files=files, note=note)


@contextmanager
def sqlite_storage_held_open(home: Path) -> Iterator[None]:
    """Hold Dagster's SQLite run and event-log databases open while runs execute.

    Dagster's SQLite storage opens and closes a connection for every event it stores (about 70
    a run), and SQLite checkpoints the WAL and syncs the disk when the last connection to a
    database closes. An idle connection held open here makes none of those closes the last
    (docs/PERFORMANCE.md). Nothing is read or written through it beyond opening;
    with PostgreSQL storage the files do not exist and this does nothing.
    """
    import sqlite3

    paths = [home / "runs.db", home / "event_log.db"]
    held = [sqlite3.connect(path) for path in paths if path.is_file()]
    try:
        for connection in held:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
        yield
    finally:
        for connection in held:
            connection.close()


@contextmanager
def _warehouse_held_open(settings: Settings) -> Iterator[None]:
    """The runs of one `run_once` share the warehouse file (see `Warehouse.held_open`); the
    spool folders of killed loads are removed first."""
    warehouse = warehouse_at(settings)
    try:
        with warehouse.held_open():
            warehouse.remove_abandoned_spools()
            yield
    finally:
        warehouse.dispose()


def unfinished_runs(settings: Settings, busy_las: Set[str] = frozenset()) -> list[RunRequest]:
    """One run per landed submission with no outcome on record (a process died while it was
    processed): each is processed again from the landing store, and its inbox file removed.
    Not for an LA in `busy_las`: one of its runs is in progress elsewhere (the UI's), and may
    be processing that very submission. The landing store's abandoned temporary files are
    removed first."""
    from dagster import RunRequest

    from ingest.assets.partitions import allocated_las
    from ingest.jobs import LA_TAG, SUBMISSION_TAG, return_run_config
    from ingest.processing import unfinished_submissions
    from ingest.storage.landing import LandingStore, open_configured_landing

    landing = open_configured_landing(settings)
    if isinstance(landing, LandingStore):
        landing.remove_abandoned_parts()
    la_codes = set(allocated_las(settings).la_codes)
    warehouse = warehouse_at(settings)
    try:
        unfinished = unfinished_submissions(landing, warehouse)
    finally:
        warehouse.dispose()
    return [
        RunRequest(
            partition_key=landed.la_code,
            tags={LA_TAG: landed.la_code, SUBMISSION_TAG: landed.submission_id},
            run_config=return_run_config(submission_id=landed.submission_id),
        )
        for landed in unfinished
        if landed.la_code in la_codes and landed.la_code not in busy_las
    ]


def runner_tag() -> str:
    """This process, as the runs it executes are tagged: `<host>:<pid>`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def settle_unfinished_runs(instance: DagsterInstance) -> set[str]:
    """Mark failed the unfinished runs an earlier `run` on this host executed in a process that
    is gone (killed), so that their files are not skipped as in progress; the LAs of the
    unfinished runs left (running in another process, the UI's or another host's)."""
    from dagster import DagsterRunStatus, RunsFilter

    from ingest.jobs import LA_TAG, RETURN_JOB, RUNNER_TAG

    records = instance.get_run_records(
        filters=RunsFilter(
            job_name=RETURN_JOB,
            statuses=[
                DagsterRunStatus.QUEUED,
                DagsterRunStatus.NOT_STARTED,
                DagsterRunStatus.STARTING,
                DagsterRunStatus.STARTED,
            ],
        )
    )
    host = f"{socket.gethostname()}:"
    busy: set[str] = set()
    for record in records:
        run = record.dagster_run
        tag = run.tags.get(RUNNER_TAG, "")
        pid = tag.removeprefix(host)
        if tag.startswith(host) and pid.isdigit() and not _process_alive(int(pid)):
            instance.report_run_failed(
                run, "the trial-ingest run process executing this run is gone"
            )
        else:
            busy.add(run.tags.get(LA_TAG, ""))
    return busy


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


def check_configuration(settings: Settings) -> None:
    """Refuse to start, saying what to set, rather than fail every run the same way."""
    from ingest.assets.partitions import allocated_las
    from pseudonymise.keys import KeyConfigError

    problem = allocated_las(settings).problem
    if problem:
        raise RunnerError(problem)
    for variable, value in ((DROP_URL, settings.drop_url), (LANDING_URL, settings.landing_url)):
        if value is None:
            raise RunnerError(f"{variable} is not set")
    for purpose in ("PSEUDONYM", "LANDING"):
        try:
            settings.key(purpose)
        except KeyConfigError as exc:
            problem = str(exc)
        if problem:
            raise RunnerError(problem)


def load_allocation(
    defs: Definitions, instance: DagsterInstance, *, console: Mapping[str, object] = QUIET_CONSOLE
) -> None:
    from ingest.jobs import ALLOCATION_JOB

    result = defs.resolve_job_def(ALLOCATION_JOB).execute_in_process(
        run_config=dict(console), instance=instance, raise_on_error=False
    )
    if not result.success:
        raise RunnerError(
            "the trial allocation could not be loaded; see the failed load_allocation run "
            f"{result.run_id} in the Dagster UI"
        )


def requested_runs(defs: Definitions, instance: DagsterInstance) -> tuple[list[RunRequest], str]:
    """Evaluate the drop sensor once, from an empty cursor: every file in an inbox is new
    unless a run for it is already queued or running (e.g. started by the UI's sensor)."""
    from dagster import build_sensor_context

    from ingest.sensors import SENSOR_NAME, AllocationMissing, DropUnavailable

    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    problem = ""
    with build_sensor_context(
        instance=instance, definitions=defs, resources=defs.resources, sensor_name=SENSOR_NAME
    ) as context:
        try:
            data = sensor.evaluate_tick(context)
        except (AllocationMissing, DropUnavailable) as exc:
            problem = str(exc)
    if problem:
        raise RunnerError(problem)
    return list(data.run_requests or []), data.skip_message or ""


def execute_request(
    defs: Definitions,
    instance: DagsterInstance,
    request: RunRequest,
    settings: Settings,
    *,
    console: Mapping[str, object] = QUIET_CONSOLE,
) -> FileOutcome:
    """Execute one requested run here, then read what became of its file from the audit."""
    from ingest.jobs import DROP_OBJECT_TAG, LA_TAG, RETURN_JOB, RUNNER_TAG, SUBMISSION_TAG

    job = defs.resolve_job_def(RETURN_JOB)
    result = job.execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        run_config={**request.run_config, **console},
        tags={**request.tags, RUNNER_TAG: runner_tag()},
        raise_on_error=False,
    )
    la_code = request.tags[LA_TAG]
    # The run as stored once it ended: the asset tags it with the submission it took.
    submission_id = result.dagster_run.tags.get(SUBMISSION_TAG)
    return FileOutcome(
        la_code=la_code,
        fingerprint=request.tags.get(DROP_OBJECT_TAG, ""),
        run_id=result.run_id,
        succeeded=result.success,
        submission_id=submission_id,
        audit=tuple(_audit_rows(settings, la_code, submission_id)),
    )


def _audit_rows(
    settings: Settings, la_code: str, submission_id: str | None
) -> list[SubmissionRecord]:
    """The audit rows of the submission's latest receipt."""
    if submission_id is None:
        return []
    warehouse = warehouse_at(settings)
    try:
        rows = [r for r in warehouse.submissions(la_code) if r.submission_id == submission_id]
    finally:
        warehouse.dispose()
    if not rows:
        return []
    latest = max(rows, key=lambda r: r.processed_at).receipt_id
    return [r for r in rows if r.receipt_id == latest]


def warehouse_at(settings: Settings) -> Warehouse:
    """The warehouse the settings name: TRIAL_WAREHOUSE_URL, or the DuckDB default."""
    from ingest.warehouse import Warehouse

    return Warehouse(settings.warehouse_url)
