"""The figures table, the targets met or missed, and the scaling plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.stages import STAGES

if TYPE_CHECKING:
    from benchmarks.measured import Measured

MiB = 2**20
GB = 10**9


@dataclass(frozen=True)
class Target:
    name: str
    limit: str
    value: float | None
    met: bool | None  # None: not measured

    def line(self) -> str:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[self.met]
        shown = "-" if self.value is None else f"{self.value:,.2f}"
        return f"  {self.name:<46} {shown:>10}  (target {self.limit}): {verdict}"


def _find(measured: list[Measured], case: str, rows: int | None = None) -> Measured | None:
    for item in measured:
        if item.result.get("case") != case:
            continue
        if rows is None or item.result.get("rows") == rows:
            return item
    return None


def _service(measured: list[Measured], rows: int, warehouse: str) -> Measured | None:
    for item in measured:
        result = item.result
        wanted = (result.get("case"), result.get("rows"), result.get("warehouse"))
        if wanted == ("service", rows, warehouse):
            return item
    return None


def print_summary(measured: list[Measured], *, reference_rows: int) -> dict[str, Any]:
    print("\nThe service's path (read -> pseudonymise -> validate -> load), DuckDB:")
    print(
        f"  {'rows':>10} {'seconds':>8} {'rows/s':>11} {'peak RSS':>10}  "
        + "  ".join(f"{s:>12}" for s in STAGES)
    )
    services = sorted(
        (m for m in measured if m.result.get("case") == "service"
         and m.result.get("warehouse") == "duckdb"),
        key=lambda m: int(m.result["rows"]),
    )  # fmt: skip
    for item in services:
        print(_service_line(item))
    print("  (stage cells: seconds and rows/s in that stage alone)")
    ratio = _ratio(measured, reference_rows)
    gap = _gap(measured)
    overhead = _overhead(measured, reference_rows)
    targets = _targets(measured, reference_rows, ratio)
    print("\nTargets:")
    for target in targets:
        print(target.line())
    return {
        "baseline_ratio": ratio,
        "hardware_gap": gap,
        "dagster_overhead": overhead,
        "targets": [vars(t) for t in targets],
    }


def _service_line(item: Measured) -> str:
    result = item.result
    rows = int(result["rows"])
    seconds = float(result["seconds"])
    stages = result["stages"]
    cells = "  ".join(f"{stages[s]:5.2f} {_rate(rows, stages[s]):>6}" for s in STAGES)
    return (
        f"  {rows:>10,} {seconds:8.2f} {rows / seconds:>11,.0f} "
        f"{item.peak_rss_bytes / MiB:>6,.0f} MiB  {cells}"
    )


def _rate(rows: int, seconds: float) -> str:
    if seconds <= 0:
        return "-"
    rate = rows / seconds
    return f"{rate / 1e6:.1f}M" if rate >= 1e6 else f"{rate / 1e3:.0f}k"


def _ratio(measured: list[Measured], rows: int) -> float | None:
    base = _find(measured, "baseline", rows)
    fast = _service(measured, rows, "duckdb")
    if base is None or fast is None:
        return None
    ratio = float(base.result["seconds"]) / float(fast.result["seconds"])
    print(
        f"\nBaseline (pandas, hmac loop, pandera-pandas, to_sql/SQLite) on {rows:,} rows: "
        f"{base.result['seconds']:.1f} s, peak RSS {base.peak_rss_bytes / MiB:,.0f} MiB; "
        f"the service is {ratio:.1f}x faster"
    )
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in base.result["stages"].items())
    print(f"  baseline stages: {stages}")
    return ratio


def _gap(measured: list[Measured]) -> dict[str, float]:
    gap: dict[str, float] = {}
    parse = _find(measured, "csv_parse")
    if parse is not None:
        gap["csv_parse_seconds"] = float(parse.result["seconds"])
    hashes = _find(measured, "hmac")
    if hashes is not None:
        values = int(hashes.result["values"])
        for method, seconds in hashes.result["seconds_by_method"].items():
            gap[f"hmac_{method}_values_per_second"] = values / float(seconds)
    if gap:
        print("\nThe hardware gap (each piece alone):")
        for name, value in gap.items():
            print(f"  {name}: {value:,.2f}")
    return gap


def _overhead(measured: list[Measured], rows: int) -> dict[str, float]:
    overhead: dict[str, float] = {}
    demo = _find(measured, "demo")
    if demo is not None and demo.result.get("runs"):
        synthesis = float(demo.result.get("synthesis_seconds") or 0.0)
        runs = int(demo.result["runs"])
        overhead["demo_run_phase_seconds"] = demo.wall_seconds - synthesis
        overhead["demo_seconds_per_run"] = (demo.wall_seconds - synthesis) / runs
    run = _find(measured, "trial_ingest_run")
    fast = _service(measured, rows, "duckdb")
    if run is not None and fast is not None:
        overhead["run_minus_service_seconds"] = run.wall_seconds - fast.wall_seconds
    if overhead:
        print("\nDagster and the service around the processing:")
        for name, value in overhead.items():
            print(f"  {name}: {value:,.2f}")
    return overhead


def _targets(measured: list[Measured], rows: int, ratio: float | None) -> list[Target]:
    def seconds(item: Measured | None, key: str = "seconds") -> float | None:
        return None if item is None else float(item.result.get(key) or item.wall_seconds)

    def at_most(name: str, limit: float, value: float | None, unit: str) -> Target:
        return Target(
            name, f"<= {limit:g} {unit}", value, None if value is None else value <= limit
        )

    one_m = _service(measured, 1_000_000, "duckdb")
    five_m = _service(measured, 5_000_000, "duckdb")
    run = _find(measured, "trial_ingest_run")
    xlsx = _find(measured, "xlsx_read")
    pg = _service(measured, 1_000_000, "postgresql+psycopg")
    demo = _find(measured, "demo")
    return [
        at_most("1M rows into DuckDB, processing (s)", 3.5, seconds(one_m), "s"),
        Target(
            f"faster than the baseline ({rows:,} rows, x)",
            ">= 8x",
            ratio,
            None if ratio is None else ratio >= 8,
        ),
        at_most("trial-ingest run, 1M, start to exit (s)", 10, _wall(run), "s"),
        at_most("peak RSS, 1M (GB)", 1.0, _rss_gb(one_m), "GB"),
        at_most("peak RSS, 5M (GB)", 2.5, _rss_gb(five_m), "GB"),
        at_most("100k-row XLSX read (s)", 2, seconds(xlsx), "s"),
        at_most("1M rows into PostgreSQL, processing (s)", 8, seconds(pg), "s"),
        at_most("12-LA demo through Dagster (s)", 60, _wall(demo), "s"),
    ]


def _wall(item: Measured | None) -> float | None:
    return None if item is None else item.wall_seconds


def _rss_gb(item: Measured | None) -> float | None:
    return None if item is None else item.peak_rss_bytes / GB


def write_plot(measured: list[Measured], path: Path) -> None:
    """Time and peak RSS against rows, for the service (DuckDB) and the baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    services = sorted(
        (m for m in measured if m.result.get("case") == "service"
         and m.result.get("warehouse") == "duckdb"),
        key=lambda m: int(m.result["rows"]),
    )  # fmt: skip
    baselines = [m for m in measured if m.result.get("case") == "baseline"]
    figure, (times, memory) = plt.subplots(1, 2, figsize=(10, 4))
    rows = [int(m.result["rows"]) for m in services]
    times.plot(rows, [float(m.result["seconds"]) for m in services], "o-", label="service")
    memory.plot(rows, [m.peak_rss_bytes / GB for m in services], "o-", label="service")
    for base in baselines:
        times.plot(
            [int(base.result["rows"])], [float(base.result["seconds"])], "s", label="baseline"
        )
        memory.plot([int(base.result["rows"])], [base.peak_rss_bytes / GB], "s", label="baseline")
    for axes, label in ((times, "seconds (read to load)"), (memory, "peak RSS (GB)")):
        axes.set_xlabel("rows in the people return (millions)")
        axes.xaxis.set_major_formatter(lambda value, _: f"{value / 1e6:g}")
        axes.set_ylim(bottom=0)
        axes.set_ylabel(label)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    loads = [value for m in services for value in m.load_average]
    busy = f"; other work: load average {min(loads):.1f}-{max(loads):.1f}" if loads else ""
    figure.suptitle(f"people return into DuckDB, 2 cores{busy}")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.summary RESULTS_JSON PLOT_PNG`: redraw the plot of a run."""
    import json
    import sys

    from benchmarks.measured import Measured

    results_path, plot_path = (sys.argv[1:] if argv is None else argv)[:2]
    results = json.loads(Path(results_path).read_text(encoding="utf-8"))
    measured = [Measured(**{**case, "load_average": tuple(case["load_average"])})
                for case in results["cases"]]  # fmt: skip
    write_plot(measured, Path(plot_path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
