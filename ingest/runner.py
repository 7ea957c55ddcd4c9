"""`trial-ingest run`, `demo` and `ui`: the service's commands on one Dagster instance.

`run_once` processes everything new on the drop once, through the same definitions and
instance as the UI (so its runs show there): load the allocation, evaluate `la_drop_sensor`
once, then execute each requested run in turn. `open_ui` starts `dg dev` on that instance.

Settings come from the environment (see `ingest.resources`); DAGSTER_HOME defaults to
`$TRIAL_HOME/dagster` and is given the repository's `dagster.yaml` (or `dagster-postgres.yaml`
when TRIAL_DAGSTER_PG_URL is set).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.resources import DROP_URL, LANDING_URL, trial_home

if TYPE_CHECKING:
    from dagster import DagsterInstance, Definitions, RunRequest

    from ingest.warehouse import SubmissionRecord, Warehouse

REPOSITORY = Path(__file__).resolve().parents[1]
INSTANCE_FILES = {"sqlite": "dagster.yaml", "postgres": "dagster-postgres.yaml"}
INSTANCE_MARKER = "# trial-ingest: Dagster instance configuration"
DAGSTER_PG_URL = "TRIAL_DAGSTER_PG_URL"
DEMO_MARKER = ".trial-ingest-demo"
DEMO_HOME = Path("var/demo")
# Runs still log everything to the event log (the UI); the terminal gets warnings and errors.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
VERBOSE_CONSOLE = {"loggers": {"console": {"config": {"log_level": "DEBUG"}}}}


class RunnerError(RuntimeError):
    """The service cannot start: the message says which setting to fix."""


@dataclass(frozen=True)
class FileOutcome:
    """One requested run: the file by fingerprint, how the run ended, what the audit says."""

    la_code: str
    fingerprint: str
    run_id: str
    succeeded: bool
    submission_id: str | None
    audit: tuple[SubmissionRecord, ...] = ()

    @property
    def status(self) -> str:
        """accepted, held, rejected or duplicate (from the audit table); failed; or gone (the
        file left the inbox before its run took it).

        A held return fails its run (its blocking checks fail) but ended in a known state.
        """
        if any(r.status == "held" for r in self.audit):
            return "held"
        if not self.succeeded:
            return "failed"
        if self.submission_id is None:
            return "gone"
        if not self.audit:
            return "failed"
        statuses = {r.status for r in self.audit}
        for status in ("duplicate", "accepted", "rejected"):
            if status in statuses:
                return status
        return "failed"


@dataclass(frozen=True)
class RunSummary:
    files: list[FileOutcome] = field(default_factory=list)
    note: str = ""  # the sensor's summary of the drop (counts only)

    @property
    def failed(self) -> bool:
        """Did a run fail without its file ending accepted, held, rejected or duplicate?"""
        return any(f.status == "failed" for f in self.files)

    @property
    def held(self) -> bool:
        return any(f.status == "held" for f in self.files)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


# --- the environment and the instance --------------------------------------------------------


def dagster_home(env: Mapping[str, str]) -> Path:
    home = env.get("DAGSTER_HOME", "").strip()
    return Path(home).expanduser().absolute() if home else trial_home(env) / "dagster"


def prepare_dagster_home(env: Mapping[str, str]) -> Path:
    """Create DAGSTER_HOME and give it the service's instance configuration.

    A `dagster.yaml` that an operator wrote (without the service's marker line) is left alone.
    """
    home = dagster_home(env)
    home.mkdir(parents=True, exist_ok=True)
    storage = "postgres" if env.get(DAGSTER_PG_URL, "").strip() else "sqlite"
    source = REPOSITORY / INSTANCE_FILES[storage]
    if not source.is_file():
        raise RunnerError(f"the instance configuration {source} is missing")
    target = home / "dagster.yaml"
    if not target.exists() or target.read_text(encoding="utf-8").startswith(INSTANCE_MARKER):
        shutil.copyfile(source, target)
    return home


def service_environment(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with DAGSTER_HOME made absolute and defaulted, and Dagster's PostgreSQL URL given
    the psycopg2 driver, which its storage needs and SQLAlchemy 2.1 no longer picks itself."""
    service = {**env, "DAGSTER_HOME": str(dagster_home(env))}
    pg_url = env.get(DAGSTER_PG_URL, "").strip()
    for bare in ("postgresql://", "postgres://"):
        if pg_url.startswith(bare):
            service[DAGSTER_PG_URL] = "postgresql+psycopg2://" + pg_url.removeprefix(bare)
    return service


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """Run with exactly `env` as os.environ (resources read their EnvVars from it)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# --- one pass over the drop ------------------------------------------------------------------


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
    from dagster import DagsterInstance

    from ingest.definitions import build_definitions

    env = service_environment(os.environ if env is None else env)
    check_configuration(env)
    console = VERBOSE_CONSOLE if verbose else QUIET_CONSOLE
    files: list[FileOutcome] = []
    with environment(env):
        prepare_dagster_home(env)
        defs = build_definitions(env)
        with DagsterInstance.get() as instance:
            load_allocation(defs, instance, console=console)
            requests, note = requested_runs(defs, instance)
            with sqlite_storage_held_open(dagster_home(env)), _warehouse_held_open(env):
                for request in requests:
                    files.append(execute_request(defs, instance, request, console=console))
                    if on_file is not None:
                        on_file(files[-1])
    return RunSummary(files=files, note=note)


@contextmanager
def sqlite_storage_held_open(home: Path) -> Iterator[None]:
    """Hold Dagster's SQLite run and event-log databases open while runs execute.

    Dagster's SQLite storage opens and closes a connection for every event it stores (about 70
    a run), and SQLite checkpoints the WAL and syncs the disk when the last connection to a
    database closes. An idle connection held open here makes none of those closes the last
    (measured: about 0.9 s less a run). Nothing is read or written through it beyond opening;
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
def _warehouse_held_open(env: Mapping[str, str]) -> Iterator[None]:
    """The runs of one `run_once` share the warehouse file (see `Warehouse.held_open`)."""
    warehouse = _warehouse_at(env)
    try:
        with warehouse.held_open():
            yield
    finally:
        warehouse.dispose()


def check_configuration(env: Mapping[str, str]) -> None:
    """Refuse to start, saying what to set, rather than fail every run the same way."""
    from ingest.assets.partitions import allocated_las
    from pseudonymise.keys import KeyConfigError, load_key

    problem = allocated_las(env).problem
    if problem:
        raise RunnerError(problem)
    for variable in (DROP_URL, LANDING_URL):
        if not env.get(variable, "").strip():
            raise RunnerError(f"{variable} is not set")
    for purpose in ("PSEUDONYM", "LANDING"):
        try:
            load_key(purpose, env)
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
    *,
    console: Mapping[str, object] = QUIET_CONSOLE,
) -> FileOutcome:
    from ingest.jobs import DROP_OBJECT_TAG, LA_TAG, RETURN_JOB

    job = defs.resolve_job_def(RETURN_JOB)
    result = job.execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        run_config={**request.run_config, **console},
        tags=dict(request.tags),
        raise_on_error=False,
    )
    la_code = request.tags[LA_TAG]
    submission_id = _submission_of(instance, result.run_id)
    return FileOutcome(
        la_code=la_code,
        fingerprint=request.tags.get(DROP_OBJECT_TAG, ""),
        run_id=result.run_id,
        succeeded=result.success,
        submission_id=submission_id,
        audit=tuple(_audit_rows(la_code, submission_id)),
    )


def _submission_of(instance: DagsterInstance, run_id: str) -> str | None:
    from ingest.jobs import SUBMISSION_TAG

    run = instance.get_run_by_id(run_id)
    return run.tags.get(SUBMISSION_TAG) if run else None


def _audit_rows(la_code: str, submission_id: str | None) -> list[SubmissionRecord]:
    """The audit rows of the submission's latest receipt."""
    if submission_id is None:
        return []
    warehouse = _warehouse_at(os.environ)
    try:
        rows = [r for r in warehouse.submissions(la_code) if r.submission_id == submission_id]
    finally:
        warehouse.dispose()
    if not rows:
        return []
    latest = max(rows, key=lambda r: r.processed_at).receipt_id
    return [r for r in rows if r.receipt_id == latest]


# --- printing --------------------------------------------------------------------------------


def file_line(outcome: FileOutcome) -> str:
    """One file, as a person following the run needs it: the LA, what became of each dataset
    in it, and rows loaded and rejected. No file name (an LA chose it); a failed run's id."""
    parts = [_dataset_part(r) for r in outcome.audit if r.dataset is not None]
    whole_file = [r.reason for r in outcome.audit if r.dataset is None and r.reason]
    if outcome.status == "failed":
        parts.append(f"run {outcome.run_id} failed: see it in the Dagster UI")
    elif outcome.status == "gone":
        parts.append("the file left the inbox before its run took it")
    elif whole_file:
        parts.append(f"whole file: {', '.join(whole_file)}")
    return f"  LA {outcome.la_code}  {outcome.status.upper():<9}  " + "; ".join(parts)


def _dataset_part(record: SubmissionRecord) -> str:
    if record.status == "duplicate":
        return f"{record.dataset}"
    if record.status == "held":
        return f"{record.dataset} held by {record.reason}, {record.rows_rejected} rejected"
    if record.status == "rejected":
        return f"{record.dataset} rejected ({record.reason or 'no valid rows'})"
    return f"{record.dataset} {record.rows_loaded} loaded, {record.rows_rejected} rejected"


def print_file_line(outcome: FileOutcome) -> None:
    print(file_line(outcome), flush=True)


def print_run_summary(summary: RunSummary) -> None:
    print_totals(summary)
    if summary.held:
        print(
            "Held returns are kept but replace nothing until released: check them in the "
            "Dagster UI, then `trial-ingest release SUBMISSION_ID`."
        )
    if summary.failed:
        print("Some runs failed: open the Dagster UI (trial-ingest ui) to see why.")


def main_run(*, verbose: bool = False) -> int:
    try:
        summary = run_once(verbose=verbose, on_file=print_file_line)
    except RunnerError as exc:
        print(f"trial-ingest run: {exc}", file=sys.stderr)
        return 2
    print_run_summary(summary)
    return summary.exit_code


# --- releasing a held return -----------------------------------------------------------------


def release_held(submission_id: str, env: Mapping[str, str] | None = None) -> FileOutcome:
    """Run `ingest_return` on a held submission with `release_held`, as the UI's launchpad would:
    a person has looked at it and accepts it; its rows then replace the LA's earlier return."""
    from dagster import DagsterInstance, RunRequest

    from ingest.definitions import build_definitions
    from ingest.jobs import LA_TAG, SUBMISSION_TAG, return_run_config

    env = service_environment(os.environ if env is None else env)
    check_configuration(env)
    la_code = _held_submission_la(submission_id, env)
    request = RunRequest(
        partition_key=la_code,
        run_config=return_run_config(submission_id=submission_id, release_held=True),
        tags={LA_TAG: la_code, SUBMISSION_TAG: submission_id},
    )
    with environment(env):
        prepare_dagster_home(env)
        defs = build_definitions(env)
        with DagsterInstance.get() as instance:
            return execute_request(defs, instance, request)


def _held_submission_la(submission_id: str, env: Mapping[str, str]) -> str:
    """The submission's LA, when the submission's latest processing held it."""
    la_code = submission_id.split("-", 1)[0]
    if not (len(la_code) == 3 and la_code.isdigit()):
        raise RunnerError("a submission id starts with its three-digit LA code")
    warehouse = _warehouse_at(env)
    try:
        rows = [r for r in warehouse.submissions(la_code) if r.submission_id == submission_id]
    finally:
        warehouse.dispose()
    latest = max(rows, key=lambda r: r.processed_at).receipt_id if rows else None
    if not any(r.status == "held" for r in rows if r.receipt_id == latest):
        raise RunnerError(f"submission {submission_id} is not held")
    return la_code


def main_release(submission_id: str) -> int:
    try:
        outcome = release_held(submission_id)
    except RunnerError as exc:
        print(f"trial-ingest release: {exc}", file=sys.stderr)
        return 2
    print_file_line(outcome)
    return 0 if outcome.status == "accepted" else 1


# --- the UI ----------------------------------------------------------------------------------


def open_ui(env: Mapping[str, str], port: int = 3000) -> subprocess.Popen[bytes]:
    """Start `dg dev` on the service's instance, in its own session.

    Its own session, because `dagster dev` started in the background from a non-interactive
    shell ignores SIGINT and SIGTERM; stop it with `stop_ui` (SIGINT to the session).
    """
    env = service_environment(env)
    prepare_dagster_home(env)
    dg = Path(sys.executable).with_name("dg")
    command = [str(dg), "dev", "--port", str(port)]
    venv = Path(sys.executable).parents[1]
    child_env = {**env, "VIRTUAL_ENV": str(venv)}
    return subprocess.Popen(command, cwd=REPOSITORY, env=child_env, start_new_session=True)


def stop_ui(process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """SIGINT to the UI's session, then SIGKILL if it has not stopped within `timeout`."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def ui_environment(env: Mapping[str, str], demo_env_file: Path) -> dict[str, str]:
    """The environment, or, when it configures no trial at all, the last demo's settings."""
    if any(name.startswith("TRIAL_") for name in env) or not demo_env_file.is_file():
        return dict(env)
    print(f"No TRIAL_ settings in the environment: showing the demo ({demo_env_file}).")
    lines = demo_env_file.read_text(encoding="utf-8").splitlines()
    return {**env, **dict(line.split("=", 1) for line in lines if "=" in line)}


def main_ui(*, port: int = 3000) -> int:
    env = ui_environment(os.environ, DEMO_HOME / "demo.env")
    process = open_ui(env, port)
    print(f"Dagster UI on http://127.0.0.1:{port} (DAGSTER_HOME {dagster_home(env)}).")
    print("Press Ctrl-C to stop it.")
    try:
        return process.wait()
    except KeyboardInterrupt:
        return stop_ui(process)


# --- the demo --------------------------------------------------------------------------------


def main_demo(
    *, home: Path, seed: int = 1, families_per_la: int = 40, verbose: bool = False
) -> int:
    """Synthesise the 12-LA trial under `home`, process it, print the LA x dataset summary."""
    from pseudonymise.keys import new_key_text
    from synthetic import generate_trial
    from synthetic.manifest import ALLOCATION_FILE, DROP_FOLDER

    home = home.expanduser().absolute()
    _fresh_demo_home(home)
    trial = home / "trial"
    manifest = generate_trial(trial, seed=seed, families_per_la=families_per_la, mess=True)
    print(f"Synthesised {len(manifest.allocation)} LAs and {len(manifest.files)} files in {trial}")
    keys = home / "keys"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TRIAL_", "DAGSTER_"))},
        "TRIAL_HOME": str(home),
        "TRIAL_DROP_URL": str(trial / DROP_FOLDER),
        "TRIAL_LANDING_URL": str(home / "landing"),
        "TRIAL_ALLOCATION_FILE": str(trial / ALLOCATION_FILE),
        "TRIAL_PSEUDONYM_KEY_FILE": str(_write_key(keys / "pseudonym.key", new_key_text())),
        "TRIAL_LANDING_KEY_FILE": str(_write_key(keys / "landing.key", new_key_text())),
        "DAGSTER_HOME": str(home / "dagster"),
    }
    env_file = _write_env_file(home / "demo.env", env)
    summary = run_once(env, verbose=verbose, on_file=print_file_line)
    with environment(service_environment(env)):
        print_demo_summary(summary, _warehouse_at(env))
    if home == DEMO_HOME.absolute():
        print("Look at it in the Dagster UI: trial-ingest ui")
    else:
        print(f"Look at it in the Dagster UI: set -a; . {env_file}; set +a; trial-ingest ui")
    return summary.exit_code


def _fresh_demo_home(home: Path) -> None:
    """An empty demo folder: one this command made before is cleared, anything else refused."""
    if home.exists() and any(home.iterdir()):
        if not (home / DEMO_MARKER).exists():
            raise RunnerError(f"{home} is not empty and was not made by `trial-ingest demo`")
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / DEMO_MARKER).write_text("made by trial-ingest demo; cleared by the next demo\n")


def _write_key(path: Path, key_text: str) -> Path:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(key_text + "\n")
    return path


def _write_env_file(path: Path, env: Mapping[str, str]) -> Path:
    names = sorted(k for k in env if k.startswith(("TRIAL_", "DAGSTER_")))
    path.write_text("".join(f"{name}={env[name]}\n" for name in names), encoding="utf-8")
    return path


def _warehouse_at(env: Mapping[str, str]) -> Warehouse:
    from ingest.resources import WAREHOUSE_URL, default_warehouse_url
    from ingest.warehouse import Warehouse

    return Warehouse(env.get(WAREHOUSE_URL) or default_warehouse_url(env))


def print_demo_summary(summary: RunSummary, warehouse: Warehouse) -> None:
    print_totals(summary)
    print()
    for line in la_dataset_table(warehouse):
        print(line)
    print()
    print("Cells: rows now in the warehouse for the LA's current return; '-N': rows of the latest")
    print("return rejected (listed in the LA's report); REJECTED: the latest return was rejected")
    print("whole; HELD: a blocking check kept the earlier return; '.': nothing received.")


def print_totals(summary: RunSummary) -> None:
    counts: dict[str, int] = {}
    for outcome in summary.files:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    totals = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"
    print(f"Files processed: {len(summary.files)} ({totals})")
    if summary.note:
        print(f"Drop: {summary.note}")


def la_dataset_table(warehouse: Warehouse) -> list[str]:
    """One line per LA: its arm and, per dataset, the cell described in `print_demo_summary`."""
    from schemas.datasets import DATASETS

    arms = {row.la_code: row.arm for row in warehouse.allocation()}
    cells = _cells(warehouse)
    widths = [max(len(name), 9) for name in DATASETS]
    header = "LA   arm       " + "  ".join(
        n.ljust(w) for n, w in zip(DATASETS, widths, strict=True)
    )
    lines = [header, "-" * len(header)]
    for la_code, arm in sorted(arms.items()):
        row = [
            cells.get((la_code, name), ".").ljust(w)
            for name, w in zip(DATASETS, widths, strict=True)
        ]
        lines.append(f"{la_code}  {arm:<8}  " + "  ".join(row))
    return lines


def _cells(warehouse: Warehouse) -> dict[tuple[str, str], str]:
    audit = [r for r in warehouse.submissions() if r.dataset is not None]
    current = {(c.la_code, c.dataset): c.submission_id for c in warehouse.current_returns()}
    latest: dict[tuple[str, str], SubmissionRecord] = {}
    for record in audit:  # oldest received first, so the last one wins
        if record.status != "duplicate":
            latest[(record.la_code, record.dataset or "")] = record
    loaded = {
        (r.la_code, r.dataset or ""): r.rows_loaded
        for r in audit
        if r.status == "accepted" and current.get((r.la_code, r.dataset or "")) == r.submission_id
    }
    cells = {}
    for key, record in latest.items():
        cell = str(loaded[key]) if key in loaded else "REJECTED"
        if record.status == "held":
            cell = f"{cell} HELD"
        elif record.rows_rejected:
            cell = f"{cell} -{record.rows_rejected}"
        cells[key] = cell
    return cells
