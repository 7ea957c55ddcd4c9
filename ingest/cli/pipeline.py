"""`trial-ingest run`, `demo`, `release` and `ui`: the service's commands on its Dagster
instance. `run` and `release`, when they cannot start, say which setting to fix and exit 2."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser("run", help="process everything new on the drop once, then exit")
    run.add_argument("--verbose", action="store_true", help="show Dagster's events as they come")
    run.set_defaults(handler=_run)

    demo = commands.add_parser(
        "demo", help="synthesise the 12-LA trial, run it end to end, print a summary"
    )
    demo.add_argument("--home", type=Path, default=Path("var/demo"))
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--families", type=int, default=40)
    demo.add_argument("--verbose", action="store_true", help="show Dagster's events as they come")
    demo.set_defaults(handler=_demo)

    release = commands.add_parser(
        "release", help="load a held return after a person has looked at it and accepts it"
    )
    release.add_argument(
        "submission_id",
        metavar="SUBMISSION_ID",
        help="the held submission (its id is in ops.submissions and in the LA's report name)",
    )
    release.set_defaults(handler=_release)

    ui = commands.add_parser("ui", help="open the Dagster UI on the configured instance")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(handler=_ui)


def _run(args: argparse.Namespace) -> int:
    from ingest.instance import RunnerError
    from ingest.outcomes import print_file_line, print_run_summary
    from ingest.runner import run_once

    try:
        summary = run_once(verbose=args.verbose, on_file=print_file_line)
    except RunnerError as exc:
        print(f"trial-ingest run: {exc}", file=sys.stderr)
        return 2
    print_run_summary(summary)
    return summary.exit_code


def _demo(args: argparse.Namespace) -> int:
    from ingest.demo import main_demo

    return main_demo(
        home=args.home, seed=args.seed, families_per_la=args.families, verbose=args.verbose
    )


def _release(args: argparse.Namespace) -> int:
    from ingest.instance import RunnerError
    from ingest.outcomes import print_file_line
    from ingest.release import release_held

    try:
        outcome = release_held(args.submission_id)
    except RunnerError as exc:
        print(f"trial-ingest release: {exc}", file=sys.stderr)
        return 2
    print_file_line(outcome)
    return 0 if outcome.status == "accepted" else 1


def _ui(args: argparse.Namespace) -> int:
    from ingest.demo import DEMO_HOME
    from ingest.instance import RunnerError, service_settings
    from ingest.settings import process_environment
    from ingest.ui import open_ui, stop_ui, ui_environment

    env = ui_environment(process_environment(), DEMO_HOME / "demo.env")
    try:
        home = service_settings(env).dagster_home
        process = open_ui(env, args.port)
    except RunnerError as exc:
        print(f"trial-ingest ui: {exc}", file=sys.stderr)
        return 2
    print(f"Dagster UI on http://127.0.0.1:{args.port} (DAGSTER_HOME {home}).")
    print("Press Ctrl-C to stop it.")
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop ends the UI's session too
    try:
        return process.wait()
    except KeyboardInterrupt:
        return stop_ui(process)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
