"""One measured case, run in a fresh child process: `python -m benchmarks.cases CASE ...`.

The child prints one line, `RESULT_MARKER` then JSON: times, row counts and its own peak RSS.
Only counts, times and sizes are printed, never a value from a file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

START = time.perf_counter()

RESULT_MARKER = "BENCHMARK-RESULT "
LA_CODE = "901"
TODAY = date(2026, 3, 1)
# A fixed benchmark key (never a real one): tokens are then the same from run to run.
BENCHMARK_SECRET = b"benchmark-only key, not a secret: 0123456789abcdef"

Result = dict[str, Any]


def peak_rss_bytes() -> int:
    """This process's peak resident set size (VmHWM), from /proc."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def emit(result: Result) -> None:
    result["peak_rss_bytes"] = peak_rss_bytes()
    print(RESULT_MARKER + json.dumps(result, sort_keys=True), flush=True)


# --- the service's own path ----------------------------------------------------------------


def service_case(args: argparse.Namespace) -> Result:
    """read -> pseudonymise -> validate -> load, as the pipeline does it, per stage."""
    from benchmarks.stages import StageClock, instrument

    clock = StageClock()
    instrument(clock)
    from benchmarks.loading import load_submission, open_warehouse
    from pseudonymise.keys import TrialKey
    from pseudonymise.tokens import Tokeniser
    from schemas.chunked import DEFAULT_WORKERS, check_submission_chunks

    workers = args.workers or DEFAULT_WORKERS
    warehouse = open_warehouse(args.warehouse)
    import_seconds = time.perf_counter() - START
    began = time.perf_counter()
    with clock.stage("read"):
        content = Path(args.input).read_bytes()
    tokeniser = Tokeniser(TrialKey(BENCHMARK_SECRET))
    submission = check_submission_chunks(
        content,
        la_code=LA_CODE,
        tokeniser=tokeniser,
        today=TODAY,
        chunk_rows=args.chunk_rows,
        min_bytes=0 if args.chunked else len(content) + 1,
        prefetch=args.prefetch,
        workers=workers,
    )
    del content
    counts = load_submission(warehouse, submission, clock=clock, received_at=datetime.now(UTC))
    total = time.perf_counter() - began
    warehouse.dispose()
    return {
        "case": "service",
        "input": Path(args.input).name,
        "warehouse": args.warehouse.split(":", 1)[0],
        "chunked": args.chunked,
        "chunk_rows": args.chunk_rows,
        "prefetch": args.prefetch,
        "workers": workers,
        "rows": counts.rows_received,
        "rows_loaded": counts.rows_loaded,
        "rows_rejected": counts.rows_rejected,
        "seconds": total,
        "stages": clock.seconds,
        "startup_seconds": import_seconds,
    }


# --- the hardware gap: each piece alone ----------------------------------------------------


def csv_parse_case(args: argparse.Namespace) -> Result:
    """polars parsing the whole CSV as text, nothing else."""
    import polars as pl

    content = Path(args.input).read_bytes()
    began = time.perf_counter()
    frame = pl.read_csv(content, has_header=False, infer_schema=False)
    seconds = time.perf_counter() - began
    return {"case": "csv_parse", "rows": frame.height - 1, "seconds": seconds}


def hmac_case(args: argparse.Namespace) -> Result:
    """HMAC-SHA-256 of `args.values` distinct identifiers: the service's tokeniser (C over
    OpenSSL), the same HMAC composed from DuckDB's `sha256` on both cores (the tokeniser's
    previous path), pre-keyed `hashlib` copies, and `hmac.new` per value."""
    import hashlib
    import hmac

    import polars as pl

    from pseudonymise.keys import TrialKey
    from pseudonymise.tokens import IdentifierKind, Tokeniser

    values = pl.Series("v", [f"P{i:09d}" for i in range(args.values)])
    tokeniser = Tokeniser(TrialKey(BENCHMARK_SECRET))
    timings: dict[str, float] = {}
    began = time.perf_counter()
    tokeniser.tokenise(values, IdentifierKind.PERSON, LA_CODE)
    timings["tokeniser_native"] = time.perf_counter() - began
    prefix = f"v1|person|{LA_CODE}|".encode()
    timings["duckdb_sha256_sql"] = _duckdb_hmac_seconds(values, prefix)
    plain = values.to_list()
    keyed = hmac.new(BENCHMARK_SECRET, prefix, hashlib.sha256)
    began = time.perf_counter()
    for value in plain:
        copy = keyed.copy()
        copy.update(value.encode())
        copy.hexdigest()
    timings["hashlib_prekeyed_copy"] = time.perf_counter() - began
    began = time.perf_counter()
    for value in plain:
        hmac.new(BENCHMARK_SECRET, prefix + value.encode(), hashlib.sha256).hexdigest()
    timings["hmac_new_per_value"] = time.perf_counter() - began
    return {"case": "hmac", "values": args.values, "seconds_by_method": timings}


def _duckdb_hmac_seconds(values: Any, prefix: bytes) -> float:
    """HMAC as two DuckDB `sha256` calls over Arrow batches of 64k rows (both cores hash)."""
    import duckdb
    import polars as pl

    block = BENCHMARK_SECRET.ljust(64, b"\0")
    inner = bytes(b ^ 0x36 for b in block) + prefix
    outer = bytes(b ^ 0x5C for b in block)
    frame = values.to_frame("v")
    batches = [frame.slice(at, 65_536) for at in range(0, frame.height, 65_536)]
    table = pl.concat(batches, rechunk=False).to_arrow()
    connection = duckdb.connect()
    connection.register("hmac_input", table)
    began = time.perf_counter()
    connection.sql(
        "SELECT left(sha256($outer || unhex(sha256($inner || encode(v)))), 32) FROM hmac_input",
        params={"outer": outer, "inner": inner},
    ).fetchall()
    return time.perf_counter() - began


def xlsx_case(args: argparse.Namespace) -> Result:
    """The service's reader on an XLSX return (calamine through fastexcel)."""
    from schemas.reader import read_submission

    content = Path(args.input).read_bytes()
    began = time.perf_counter()
    read = read_submission(content)
    seconds = time.perf_counter() - began
    rows = sum(table.frame.height for table in read.tables)
    return {"case": "xlsx_read", "rows": rows, "seconds": seconds}


def baseline_case(args: argparse.Namespace) -> Result:
    from benchmarks.baseline import run_baseline

    result = run_baseline(Path(args.input), Path(args.sqlite), la_code=LA_CODE, today=TODAY)
    result["case"] = "baseline"
    result["input"] = Path(args.input).name
    return result


def profile_case(args: argparse.Namespace) -> Result:
    """The service case under pyinstrument; the text profile goes to `args.profile_out`."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.005)
    profiler.start()
    result = service_case(args)
    profiler.stop()
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    Path(args.profile_out).write_text(text, encoding="utf-8")
    result["case"] = "profile"
    return result


CASES: dict[str, Callable[[argparse.Namespace], Result]] = {
    "service": service_case,
    "csv_parse": csv_parse_case,
    "hmac": hmac_case,
    "xlsx_read": xlsx_case,
    "baseline": baseline_case,
    "profile": profile_case,
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cases")
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--input", default="")
    parser.add_argument("--warehouse", default="")
    parser.add_argument("--sqlite", default="")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--prefetch", type=int, default=1)
    parser.add_argument("--workers", type=int, help="slices checked at once (service's default)")
    parser.add_argument("--whole", dest="chunked", action="store_false")
    parser.add_argument("--values", type=int, default=1_000_000)
    parser.add_argument("--profile-out", default="")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    emit(CASES[args.case](args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
