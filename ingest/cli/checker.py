"""`trial-ingest check`: the LA's pre-flight check of a return file, exactly as the pipeline
would check it, and its exit codes (for an LA's own scripts)."""

from __future__ import annotations

import argparse
import hashlib
from datetime import date
from pathlib import Path

from pseudonymise.la_code import is_la_code

EXIT_ACCEPTED = 0
EXIT_ROWS_REJECTED = 1
EXIT_FILE_REJECTED = 2


def add_check(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser(
        "check", help="pre-flight check of a return file, exactly as the pipeline would check it"
    )
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.add_argument("--la", required=True, help="your three-digit DfE LA code")
    check.add_argument("--csv", type=Path, help="also write every problem as CSV to this path")
    check.add_argument("--today", type=date.fromisoformat, help=argparse.SUPPRESS)
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from pseudonymise.keys import new_key_text, parse_key_text
    from pseudonymise.tokens import Tokeniser
    from schemas.report import render_issues_csv, render_report
    from schemas.submission import check_submission

    la_code = valid_la_code(args.la)
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


def valid_la_code(text: str) -> str:
    """`--la` as given: a three-digit DfE LA code, or the command stops saying so."""
    code = text.strip()
    if not is_la_code(code):
        raise SystemExit("--la must be a three-digit DfE LA code, such as 201")
    return code
