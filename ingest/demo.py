"""`trial-ingest demo`: synthesise the 12-LA trial, give it keys and settings of its own, run
it once end to end, and print the LA x dataset summary table."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.instance import RunnerError, service_settings
from ingest.outcomes import RunSummary, print_file_line, print_totals
from ingest.runner import run_once, warehouse_at
from ingest.settings import process_environment

if TYPE_CHECKING:
    from ingest.warehouse import SubmissionRecord, Warehouse

DEMO_MARKER = ".trial-ingest-demo"
DEMO_HOME = Path("var/demo")


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
        **{
            k: v
            for k, v in process_environment().items()
            if not k.startswith(("TRIAL_", "DAGSTER_"))
        },
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
    warehouse = warehouse_at(service_settings(env))
    try:
        print_demo_summary(summary, warehouse)
    finally:
        warehouse.dispose()
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


def print_demo_summary(summary: RunSummary, warehouse: Warehouse) -> None:
    print_totals(summary)
    print()
    for line in la_dataset_table(warehouse):
        print(line)
    print()
    print("Cells: rows now in the warehouse for the LA's current return; '-N': rows of the latest")
    print("return rejected (listed in the LA's report); REJECTED: the latest return was rejected")
    print("whole; HELD: a blocking check kept the earlier return; '.': nothing received.")


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
