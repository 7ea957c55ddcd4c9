"""`la_drop_sensor`: watches every allocated LA's inbox and requests one run per new file.

A tick only lists inboxes: it reads no file and hashes no content. A file is known by its
keyed fingerprint (LA, name, size and version under the landing key), so neither the LA's file
name nor anything in the file reaches a partition key, a run tag, run config or the cursor.

The cursor (JSON) holds, per LA, the fingerprints already requested that are still in the
inbox. A fingerprint that leaves the inbox (the run took the file) leaves the cursor, so the
same name uploaded again later is new, and a corrected re-upload has a new size or version and
so a new fingerprint. Fingerprints of runs still queued or running are skipped too, so the
sensor and `trial-ingest run` (which starts from an empty cursor) do not take one file twice.

A file leaves the inbox only once its outcome is recorded, so a file whose run failed (or
whose process died) stays in the inbox, and stays requested while it is there, so a broken
file is not retried every tick: re-execute its run from the UI, or `trial-ingest run`, which
finishes what killed runs left and tries everything still in the inboxes.
"""

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from ingest.assets.partitions import AllocatedLAs
from ingest.jobs import ALLOCATION_KEY, DROP_OBJECT_TAG, LA_TAG, AssetJob, return_run_config
from ingest.resources import DropResource
from ingest.settings import ConfigurationError
from ingest.storage.drop import Drop, DropError, DropObject
from pseudonymise.keys import KeyConfigError

SENSOR_NAME = "la_drop_sensor"
MINIMUM_INTERVAL_SECONDS = 20
CURSOR_VERSION = 1

_UNFINISHED_RUN_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


class AllocationMissing(RuntimeError):
    """The sensor has no LA to watch; the message says which setting to fix."""


class DropUnavailable(RuntimeError):
    """The drop cannot be opened at all (unset, missing folder, unsupported scheme)."""


@dataclass
class DropScan:
    """What one tick found: new files, the cursor to keep, and problems as counts and codes."""

    new: list[DropObject] = field(default_factory=list)
    requested: dict[str, list[str]] = field(default_factory=dict)
    unlisted_las: list[str] = field(default_factory=list)
    unallocated_folders: int = 0
    first_problem: str = ""  # why the first unlisted inbox could not be listed

    def summary(self) -> str:
        parts = [f"{len(self.new)} new file(s)"]
        if self.unlisted_las:
            parts.append(f"inbox not listed for LA {', '.join(self.unlisted_las)}")
        if self.unallocated_folders:
            parts.append(
                f"{self.unallocated_folders} folder(s) on the drop are not LAs of the allocation "
                "and are ignored"
            )
        return "; ".join(parts)


def read_cursor(cursor: str | None) -> dict[str, set[str]]:
    """Fingerprints requested per LA; an absent or unreadable cursor starts afresh."""
    if not cursor:
        return {}
    try:
        state = json.loads(cursor)
    except json.JSONDecodeError:
        return {}
    if not isinstance(state, dict) or state.get("v") != CURSOR_VERSION:
        return {}
    requested = state.get("requested", {})
    if not isinstance(requested, dict):
        return {}
    return {
        str(la): {str(fp) for fp in fps} for la, fps in requested.items() if isinstance(fps, list)
    }


def write_cursor(requested: Mapping[str, Iterable[str]]) -> str:
    kept = {la: sorted(fps) for la, fps in sorted(requested.items()) if fps}
    return json.dumps({"v": CURSOR_VERSION, "requested": kept}, separators=(",", ":"))


def scan_drop(
    drop: Drop,
    la_codes: Sequence[str],
    requested: Mapping[str, set[str]],
    in_flight: set[str],
) -> DropScan:
    """List every allocated LA's inbox; one LA's failure is recorded and the others go on."""
    scan = DropScan()
    for la_code in la_codes:
        try:
            inbox = drop.list_inbox(la_code)
        except Exception as exc:  # one LA's trouble must not stop the others' files
            scan.first_problem = scan.first_problem or _safe_problem(exc)
            scan.unlisted_las.append(la_code)
            scan.requested[la_code] = sorted(requested.get(la_code, set()))
            continue
        already = requested.get(la_code, set()) | in_flight
        scan.new += [obj for obj in _in_upload_order(inbox) if obj.fingerprint not in already]
        scan.requested[la_code] = [obj.fingerprint for obj in inbox]
    scan.unallocated_folders = _count_unallocated(drop, la_codes)
    return scan


def _safe_problem(error: Exception) -> str:
    """A drop error's own message (written to name no file); otherwise the class only."""
    return str(error) if isinstance(error, DropError) else type(error).__name__


def _in_upload_order(inbox: list[DropObject]) -> list[DropObject]:
    """Oldest version first where versions are times (a local drop's mtime), so that an LA's
    files are taken, and so received, in the order they were uploaded."""

    def order(obj: DropObject) -> tuple[int, str]:
        return (int(obj.version) if obj.version.isdigit() else 0, obj.fingerprint)

    return sorted(inbox, key=order)


def _count_unallocated(drop: Drop, la_codes: Sequence[str]) -> int:
    try:
        present = drop.la_codes_present()
    except (DropError, OSError):
        return 0
    return len(set(present) - set(la_codes))


def run_request_for(obj: DropObject) -> RunRequest:
    """One run for one file: the LA as partition and tag, the file by fingerprint only."""
    return RunRequest(
        partition_key=obj.la_code,
        tags={LA_TAG: obj.la_code, DROP_OBJECT_TAG: obj.fingerprint},
        run_config=return_run_config(fingerprint=obj.fingerprint),
    )


def in_flight_fingerprints(context: SensorEvaluationContext, job_name: str) -> set[str]:
    """Fingerprints of this job's runs that are queued or running."""
    records = context.instance.get_run_records(
        filters=RunsFilter(job_name=job_name, statuses=_UNFINISHED_RUN_STATUSES)
    )
    return {
        record.dagster_run.tags[DROP_OBJECT_TAG]
        for record in records
        if DROP_OBJECT_TAG in record.dagster_run.tags
    }


def evaluate_drop(
    context: SensorEvaluationContext, drop: Drop, allocated: AllocatedLAs, job_name: str
) -> SensorResult:
    """One tick: the run requests for new files and the cursor to keep."""
    if allocated.problem:
        raise AllocationMissing(allocated.problem)
    scan = scan_drop(
        drop,
        allocated.la_codes,
        read_cursor(context.cursor),
        in_flight_fingerprints(context, job_name),
    )
    if allocated.la_codes and len(scan.unlisted_las) == len(allocated.la_codes):
        # Nothing could be listed: the drop itself is unusable (an SFTP host key that is not
        # the pinned one, refused credentials, an unreachable server). Fail the tick, loudly.
        raise DropUnavailable(f"no inbox on the drop could be listed: {scan.first_problem}")
    if scan.new or scan.unlisted_las or scan.unallocated_folders:
        context.log.info(scan.summary())
    cursor = write_cursor(scan.requested)
    if not scan.new:
        return SensorResult(skip_reason=scan.summary(), cursor=cursor)
    return SensorResult(run_requests=[run_request_for(obj) for obj in scan.new], cursor=cursor)


def build_la_drop_sensor(allocated: AllocatedLAs, job: AssetJob) -> SensorDefinition:
    @sensor(
        name=SENSOR_NAME,
        job=job,
        minimum_interval_seconds=MINIMUM_INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Lists every allocated LA's inbox on the drop and requests one run per new file "
            "(by keyed fingerprint; no file is read here)."
        ),
    )
    def la_drop_sensor(context: SensorEvaluationContext, drop: DropResource) -> SensorResult:
        try:
            opened = drop.get()
        except (
            ConfigurationError,
            KeyConfigError,
            DropError,
            ValueError,
            NotImplementedError,
        ) as exc:
            raise DropUnavailable(str(exc)) from None
        return evaluate_drop(context, opened, allocated, job.name)

    return la_drop_sensor


def build_allocation_automation() -> AutomationConditionSensorDefinition:
    """Evaluates `trial/allocation`'s automation condition, so the UI alone loads the
    allocation when it has never been loaded (Dagster's default automation sensor starts
    stopped)."""
    return AutomationConditionSensorDefinition(
        "allocation_automation",
        target=AssetSelection.assets(ALLOCATION_KEY),
        default_status=DefaultSensorStatus.RUNNING,
        description="Loads trial.allocation when it is missing.",
    )
