"""`trial-ingest`: the command line of the service and of the LA pre-flight checker.

Heavy modules (Dagster, polars) are imported inside the commands that need them, so that
`trial-ingest keygen` and `--help` answer at once.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

EXIT_ACCEPTED = 0
EXIT_ROWS_REJECTED = 1
EXIT_FILE_REJECTED = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    handler = args.handler
    code: int = handler(args)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trial-ingest",
        description="Ingestion service for the Supporting Families systemic practice trial.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    keygen = commands.add_parser("keygen", help="print a new random key (pseudonym or landing)")
    keygen.set_defaults(handler=_keygen)

    check = commands.add_parser(
        "check", help="pre-flight check of a return file, exactly as the pipeline would check it"
    )
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.add_argument("--la", required=True, help="your three-digit DfE LA code")
    check.add_argument("--csv", type=Path, help="also write every problem as CSV to this path")
    check.add_argument("--today", type=date.fromisoformat, help=argparse.SUPPRESS)
    check.set_defaults(handler=_check)

    synth = commands.add_parser("synth", help="write a synthetic 12-LA trial (allocation + drops)")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--seed", type=int, default=1)
    synth.add_argument("--families", type=int, default=40, help="families per LA")
    synth.add_argument("--clean", action="store_true", help="no planted problems")
    synth.set_defaults(handler=_synth)

    dictionary = commands.add_parser("dictionary", help="write the data dictionary (Markdown)")
    dictionary.add_argument("--out", type=Path, default=Path("docs/DATA_DICTIONARY.md"))
    dictionary.set_defaults(handler=_dictionary)

    _add_pipeline_commands(commands)
    _add_maintenance_commands(commands)
    return parser


def _add_pipeline_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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

    quality = commands.add_parser(
        "quality", help="write the data-quality report (counts only) over the clean tables"
    )
    quality.add_argument(
        "--out", type=Path, help="the Markdown file (default: TRIAL_QUALITY_DIR or TRIAL_HOME)"
    )
    quality.add_argument("--la", type=_valid_la_code, help="one LA only")
    quality.set_defaults(handler=_quality)


def _quality(args: argparse.Namespace) -> int:
    from ingest.quality import main_quality

    return main_quality(out=args.out, la_code=args.la)


def _keygen(_: argparse.Namespace) -> int:
    from pseudonymise.keys import new_key_text

    print("A new random key. Keep it secret: store it in a file readable only by the service")
    print("(TRIAL_PSEUDONYM_KEY_FILE / TRIAL_LANDING_KEY_FILE) or in your secret store.")
    print(new_key_text())
    return 0


def _check(args: argparse.Namespace) -> int:
    from pseudonymise.keys import new_key_text, parse_key_text
    from pseudonymise.tokens import Tokeniser
    from schemas.report import render_issues_csv, render_report
    from schemas.submission import check_submission

    la_code = _valid_la_code(args.la)
    # The checker runs at the LA, which never holds the trial key: tokens are made under a
    # throwaway key, used only to find duplicated keys, and never shown.
    tokeniser = Tokeniser(parse_key_text(new_key_text()))
    today = args.today or date.today()
    worst = EXIT_ACCEPTED
    csv_parts: list[str] = []
    for path in args.files:
        content = path.read_bytes()
        outcome = check_submission(content, la_code=la_code, tokeniser=tokeniser, today=today)
        sha256 = hashlib.sha256(content).hexdigest()
        print(f"== {path}")
        print(render_report(outcome, received_at=None, sha256=sha256, size_bytes=len(content)))
        csv_parts.append(render_issues_csv(outcome))
        worst = max(worst, _exit_code(outcome.accepted, outcome.accepted_in_full))
    if args.csv:
        args.csv.write_text(_join_csv(csv_parts), encoding="utf-8-sig")
        print(f"CSV report written to {args.csv}")
    return worst


def _exit_code(accepted: bool, accepted_in_full: bool) -> int:
    if accepted_in_full:
        return EXIT_ACCEPTED
    return EXIT_ROWS_REJECTED if accepted else EXIT_FILE_REJECTED


def _join_csv(parts: list[str]) -> str:
    header, *_ = parts[0].split("\r\n", 1)
    bodies = [part.split("\r\n", 1)[1] for part in parts]
    return header + "\r\n" + "".join(bodies)


def _valid_la_code(text: str) -> str:
    code = text.strip()
    if len(code) != 3 or not code.isdigit():
        raise SystemExit("--la must be a three-digit DfE LA code, such as 201")
    return code


def _synth(args: argparse.Namespace) -> int:
    from synthetic import generate_trial

    manifest = generate_trial(
        args.out, seed=args.seed, families_per_la=args.families, mess=not args.clean
    )
    print(
        f"Wrote a synthetic trial of {len(manifest.allocation)} LAs and "
        f"{len(manifest.files)} files to {args.out}"
    )
    print(f"Allocation: {args.out / 'allocation.csv'}; drops: {args.out / 'drop'}")
    return 0


def _dictionary(args: argparse.Namespace) -> int:
    from schemas.dictionary import render_dictionary

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render_dictionary(), encoding="utf-8")
    print(f"Data dictionary written to {args.out}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from ingest.runner import main_run

    return main_run(verbose=args.verbose)


def _demo(args: argparse.Namespace) -> int:
    from ingest.runner import main_demo

    return main_demo(
        home=args.home, seed=args.seed, families_per_la=args.families, verbose=args.verbose
    )


def _release(args: argparse.Namespace) -> int:
    from ingest.runner import main_release

    return main_release(args.submission_id)


def _ui(args: argparse.Namespace) -> int:
    from ingest.runner import main_ui

    return main_ui(port=args.port)


def _add_maintenance_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    retention = commands.add_parser(
        "retention", help="delete landed raw files older than TRIAL_RETENTION_DAYS, log each"
    )
    retention.add_argument("--dry-run", action="store_true", help="only count what would go")
    retention.set_defaults(handler=_retention)

    rotate = commands.add_parser(
        "rotate-key",
        help="rebuild the warehouse under the configured (new) pseudonymisation key and swap it in",
    )
    rotate.add_argument(
        "--allow-loss",
        action="store_true",
        help="drop returns whose raw file retention has deleted (refused by default)",
    )
    rotate.add_argument(
        "--target-url",
        help="an empty database to build the rotated warehouse in, and leave it there (no swap; "
        "by default PostgreSQL is rebuilt and switched over in place)",
    )
    rotate.add_argument(
        "--keep-old",
        action="store_true",
        help="PostgreSQL: keep the old schemas as <name>__retired_<time> (they keep the old "
        "tokens) instead of dropping them at the switch-over",
    )
    rotate.set_defaults(handler=_rotate_key)


def _retention(args: argparse.Namespace) -> int:
    from ingest.retention import main_retention

    return main_retention(dry_run=args.dry_run)


def _rotate_key(args: argparse.Namespace) -> int:
    from ingest.rotation import main_rotate_key

    return main_rotate_key(
        allow_loss=args.allow_loss, target_url=args.target_url, keep_old=args.keep_old
    )


if __name__ == "__main__":
    sys.exit(main())
