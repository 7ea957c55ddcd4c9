"""The performance harness: `python -m benchmarks.run [--sizes 100k,1M,5M] [--quick]`.

Writes deterministic inputs under `--work` (default `var/benchmarks`), then measures every
case in a fresh child process, so each peak RSS is that case's own (from `wait4`):

- the service's processing path for one `people` return (read -> pseudonymise -> validate ->
  load into DuckDB), per stage and in total, at every size;
- the naive pandas baseline on the 1M input (100k with --quick), and the ratio;
- a 100k-row XLSX read; polars' CSV parse alone and HMAC alone (the hardware gap);
- a pyinstrument profile of the 1M case;
- `trial-ingest run` from process start to exit on the 1M file;
- the same 1M rows into PostgreSQL (127.0.0.1:5432, user postgres; its own database);
- the 12-LA demo through Dagster, with the per-run overhead.

Prints a table and writes `results.json` (and the scaling plot with `--plot`). Only times,
sizes and row counts are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.cases import RESULT_MARKER
from benchmarks.inputs import LA_CODE, planned_inputs
from benchmarks.measured import Measured

REPOSITORY = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TRIAL_INGEST = str(Path(sys.executable).with_name("trial-ingest"))
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ONE_MILLION = 1_000_000
MiB = 2**20


# --- running children -----------------------------------------------------------------------


def run_child(
    name: str,
    argv: list[str],
    *,
    env: Mapping[str, str] | None = None,
    on_line: Callable[[str, float], None] | None = None,
) -> Measured:
    """Run `argv` to completion; wall time from spawn to exit, peak RSS from `wait4`."""
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    process = subprocess.Popen(
        argv,
        cwd=REPOSITORY,
        env=dict(env) if env is not None else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    result: dict[str, Any] = {}
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(RESULT_MARKER):
            result = json.loads(line[len(RESULT_MARKER) :])
        elif on_line is not None:
            on_line(line.rstrip("\n"), time.perf_counter() - began)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    # A case child reports its own peak (VmHWM); for other commands, wait4's figure, which
    # counts the child's descendants too (and never less than this small process's own peak).
    peak = int(result.get("peak_rss_bytes") or usage.ru_maxrss * 1024)
    return Measured(
        name=name,
        command=" ".join(_shown(a) for a in argv),
        wall_seconds=wall,
        peak_rss_bytes=peak,
        returncode=process.returncode,
        result=result,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        load_average=(round(load_before, 2), round(os.getloadavg()[0], 2)),
    )


def _shown(argument: str) -> str:
    """Paths relative to the repository, so the command reads as typed there."""
    try:
        return str(Path(argument).relative_to(REPOSITORY))
    except ValueError:
        return argument


def best_of(times: int, measure: Callable[[], Measured | None]) -> Measured | None:
    """The fastest of `times` runs (by the child's own total, else wall time); every run's
    time is kept in `result["all_seconds"]`."""
    runs = [m for m in (measure() for _ in range(max(times, 1))) if m is not None]
    if not runs:
        return None

    def seconds(item: Measured) -> float:
        return float(item.result.get("seconds") or item.wall_seconds)

    best = min(runs, key=seconds)
    best.result["all_seconds"] = [round(seconds(m), 3) for m in runs]
    best.result["all_wall_seconds"] = [round(m.wall_seconds, 3) for m in runs]
    return best


def case(name: str, *args: str) -> list[str]:
    return [PYTHON, "-m", "benchmarks.cases", name, *args]


# --- the cases ------------------------------------------------------------------------------


def service(path: Path, work: Path, *, url: str | None = None, chunk_rows: int) -> Measured:
    database = work / "service.duckdb"
    database.unlink(missing_ok=True)
    url = url or f"duckdb:///{database}"
    argv = case("service", "--input", str(path), "--warehouse", url)
    argv += ["--chunk-rows", str(chunk_rows)]
    into = "PostgreSQL" if url.startswith("postgresql") else "DuckDB"
    measured = run_child(f"service {path.name} into {into}", argv)
    database.unlink(missing_ok=True)
    return measured


def baseline(path: Path, work: Path) -> Measured:
    sqlite = work / "baseline.sqlite"
    sqlite.unlink(missing_ok=True)
    measured = run_child(
        f"baseline {path.name}", case("baseline", "--input", str(path), "--sqlite", str(sqlite))
    )
    sqlite.unlink(missing_ok=True)
    return measured


def postgres(path: Path, work: Path, *, chunk_rows: int) -> Measured | None:
    """The service path into a PostgreSQL database made for the run and dropped after."""
    import psycopg
    from psycopg import sql

    database = f"trial_benchmark_{os.getpid()}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error:
        return None
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        try:
            url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
            return service(path, work, url=url, chunk_rows=chunk_rows)
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )


def profile(path: Path, work: Path, *, chunk_rows: int) -> Measured:
    database = work / "profile.duckdb"
    database.unlink(missing_ok=True)
    output = work / f"profile-{path.stem}.txt"
    argv = case("profile", "--input", str(path), "--warehouse", f"duckdb:///{database}")
    # No worker thread: pyinstrument samples one thread, so everything runs in that one.
    argv += ["--chunk-rows", str(chunk_rows), "--prefetch", "0", "--workers", "1"]
    argv += ["--profile-out", str(output)]
    measured = run_child(f"profile {path.name}", argv)
    measured.result["profile_file"] = str(output)
    database.unlink(missing_ok=True)
    return measured


def trial_ingest_run(path: Path, work: Path) -> Measured:
    """`trial-ingest run` on a drop holding just this file, from process start to exit."""
    home = _fresh(work / "trial-ingest-run")
    inbox = home / "drop" / LA_CODE
    inbox.mkdir(parents=True)
    shutil.copyfile(path, inbox / "people.csv")
    allocation = home / "allocation.csv"
    allocation.write_text(
        f"la_code,la_name,arm,randomised_on\n{LA_CODE},Benchmark LA,SYSTEMIC,2024-09-01\n",
        encoding="utf-8",
    )
    env = _service_env(home, allocation)
    totals: list[str] = []

    def watch(line: str, at: float) -> None:
        if line.startswith("Files processed:"):
            totals.append(line.split(":", 1)[1].strip())

    argv = [TRIAL_INGEST, "run"]
    measured = run_child(f"trial-ingest run {path.name}", argv, env=env, on_line=watch)
    measured.result = {"case": "trial_ingest_run", "input": path.name, "files": totals}
    return measured


def demo(work: Path) -> Measured:
    """`trial-ingest demo`; the run phase starts when synthesis is reported done."""
    home = work / "demo"
    marks: dict[str, float] = {}
    files: list[str] = []

    def watch(line: str, at: float) -> None:
        if line.startswith("Synthesised"):
            marks["synthesised"] = at
        if line.startswith("Files processed:"):
            files.append(line)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIAL_", "DAGSTER_"))}
    argv = [TRIAL_INGEST, "demo", "--home", str(home)]
    measured = run_child("trial-ingest demo", argv, env=env, on_line=watch)
    runs = _count_runs(files[0]) if files else 0
    measured.result = {
        "case": "demo",
        "synthesis_seconds": marks.get("synthesised"),
        "runs": runs,
    }
    return measured


def _count_runs(line: str) -> int:
    """`Files processed: 40 (...)` -> 40."""
    return int(line.split(":", 1)[1].split()[0])


def _fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def _service_env(home: Path, allocation: Path) -> dict[str, str]:
    from pseudonymise.keys import new_key_text

    keys = home / "keys"
    keys.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIAL_", "DAGSTER_"))}
    env |= {
        "TRIAL_HOME": str(home),
        "TRIAL_DROP_URL": str(home / "drop"),
        "TRIAL_LANDING_URL": str(home / "landing"),
        "TRIAL_ALLOCATION_FILE": str(allocation),
        "DAGSTER_HOME": str(home / "dagster"),
    }
    for purpose in ("PSEUDONYM", "LANDING"):
        key_file = keys / f"{purpose.lower()}.key"
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(new_key_text() + "\n")
        env[f"TRIAL_{purpose}_KEY_FILE"] = str(key_file)
    return env


# --- the whole run --------------------------------------------------------------------------


@dataclass
class Options:
    sizes: list[int]
    work: Path
    chunk_rows: int
    quick: bool
    skip: set[str]
    plot: Path | None
    repeat: int


def parse_options(argv: list[str]) -> Options:
    from benchmarks.inputs import parse_size

    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--sizes", default="100k,1M,5M", help="people CSV sizes, e.g. 100k,1M")
    parser.add_argument("--quick", action="store_true", help="100k only; no 5M, demo or profile")
    parser.add_argument("--work", type=Path, default=REPOSITORY / "var" / "benchmarks")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per case up to 1M; best kept")
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated: baseline,xlsx,gap,profile,run,postgres,demo",
    )
    parser.add_argument("--plot", type=Path, help="write the scaling plot (PNG) here")
    args = parser.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.quick:
        sizes = [100_000]
        skip |= {"profile", "demo", "run"}
    return Options(
        sizes=sorted(set(sizes)),
        work=args.work.absolute(),
        chunk_rows=args.chunk_rows,
        quick=args.quick,
        skip=skip,
        plot=args.plot,
        repeat=args.repeat,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse_options(sys.argv[1:] if argv is None else argv)
    reference = ONE_MILLION if not options.quick else 100_000
    sizes = sorted({*options.sizes, reference})
    print(f"Preparing inputs in {options.work / 'inputs'} ...", flush=True)
    with_xlsx = "xlsx" not in options.skip
    inputs = planned_inputs(options.work / "inputs", sizes, with_xlsx=with_xlsx)
    # In a child, so that this process stays small: a child's peak RSS as `wait4` reports it
    # starts from its parent's at the fork.
    writer = [PYTHON, "-m", "benchmarks.inputs", str(options.work / "inputs")]
    writer += [str(rows) for rows in sizes] + (["--xlsx"] if with_xlsx else [])
    subprocess.run(writer, cwd=REPOSITORY, check=True)
    work = options.work
    chunk_rows = options.chunk_rows
    measured: list[Measured] = []

    def record(item: Measured | None) -> Measured | None:
        if item is not None:
            measured.append(item)
            print(describe(item), flush=True)
        return item

    reference_csv = inputs.csv[reference]
    repeat = options.repeat
    for rows in sizes:
        times = repeat if rows <= ONE_MILLION else 1
        record(best_of(times, partial(service, inputs.csv[rows], work, chunk_rows=chunk_rows)))
    if "baseline" not in options.skip:
        record(baseline(reference_csv, work))
    if "xlsx" not in options.skip and inputs.xlsx is not None:
        xlsx = case("xlsx_read", "--input", str(inputs.xlsx))
        record(best_of(repeat, partial(run_child, f"xlsx read {inputs.xlsx.name}", xlsx)))
    if "gap" not in options.skip:
        parse = case("csv_parse", "--input", str(reference_csv))
        record(best_of(repeat, lambda: run_child("csv parse alone", parse)))
        record(
            best_of(
                repeat, lambda: run_child("hmac alone", case("hmac", "--values", str(reference)))
            )
        )
    if "profile" not in options.skip:
        record(profile(reference_csv, work, chunk_rows=chunk_rows))
    if "run" not in options.skip:
        record(best_of(repeat, lambda: trial_ingest_run(reference_csv, work)))
    if "postgres" not in options.skip:
        pg = best_of(repeat, lambda: postgres(reference_csv, work, chunk_rows=chunk_rows))
        if record(pg) is None:
            print("PostgreSQL at 127.0.0.1:5432 is not reachable: skipped", flush=True)
    if "demo" not in options.skip:
        record(demo(work))

    from benchmarks.summary import print_summary, write_plot

    summary = print_summary(measured, reference_rows=reference)
    results = {
        "machine": machine(),
        "options": {
            "sizes": options.sizes,
            "chunk_rows": chunk_rows,
            "quick": options.quick,
            "repeat": options.repeat,
        },
        "cases": [asdict(m) for m in measured],
        "summary": summary,
    }
    (work / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"\nResults: {work / 'results.json'}")
    if options.plot is not None:
        write_plot(measured, options.plot)
        print(f"Plot: {options.plot}")
    return 0 if all(m.returncode == 0 for m in measured) else 1


def describe(item: Measured) -> str:
    rows = item.result.get("rows")
    seconds = item.result.get("seconds")
    inner = f", processing {seconds:.2f} s" if isinstance(seconds, float) else ""
    count = f", {rows:,} rows" if isinstance(rows, int) else ""
    status = "" if item.returncode == 0 else f"  (exit {item.returncode})"
    return (
        f"  {item.name}: {item.wall_seconds:.2f} s wall{inner}{count}, "
        f"peak RSS {item.peak_rss_bytes / MiB:,.0f} MiB, CPU {item.cpu_seconds:.1f} s, "
        f"load average {item.load_average[0]:.1f}->{item.load_average[1]:.1f}{status}"
    )


def machine() -> dict[str, Any]:
    import resource

    load = os.getloadavg()
    return {
        "harness_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_end": [round(x, 2) for x in load],
    }


if __name__ == "__main__":
    raise SystemExit(main())
