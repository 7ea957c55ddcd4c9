"""`trial-ingest`: the command line of the service and of the LA pre-flight checker.

One module per group of commands: `checker` (check, and its exit codes), `tools` (keygen, synth,
dictionary), `pipeline` (run, demo, release, ui), `maintenance` (quality, retention,
rotate-key). Heavy modules (Dagster, polars) are imported inside the commands that need them,
so that `trial-ingest keygen` and `--help` answer at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ingest.cli import checker, maintenance, pipeline, tools
from ingest.settings import ConfigurationError
from pseudonymise.keys import KeyConfigError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    handler = args.handler
    try:
        code: int = handler(args)
    except (ConfigurationError, KeyConfigError) as exc:  # messages name variables, never values
        print(f"trial-ingest: {exc}", file=sys.stderr)
        return 2
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trial-ingest",
        description="Ingestion service for the Supporting Families systemic practice trial.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    # In the order `trial-ingest --help` lists them.
    tools.add_keygen(commands)
    checker.add_check(commands)
    tools.add_synth(commands)
    tools.add_dictionary(commands)
    pipeline.add_commands(commands)
    maintenance.add_commands(commands)
    return parser
