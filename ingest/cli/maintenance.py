"""`trial-ingest quality`, `retention` and `rotate-key`: the data-quality report, deleting raw
files past retention, and rotating the pseudonymisation key."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.cli.checker import valid_la_code

if TYPE_CHECKING:
    from ingest.rotation import RotationResult
    from ingest.settings import Settings


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    quality = commands.add_parser(
        "quality", help="write the data-quality report (counts only) over the clean tables"
    )
    quality.add_argument(
        "--out", type=Path, help="the Markdown file (default: TRIAL_QUALITY_DIR or TRIAL_HOME)"
    )
    quality.add_argument("--la", type=valid_la_code, help="one LA only")
    quality.set_defaults(handler=_quality)

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


def _quality(args: argparse.Namespace) -> int:
    from ingest.quality import main_quality

    return main_quality(_settings(), out=args.out, la_code=args.la)


def _retention(args: argparse.Namespace) -> int:
    from ingest.retention import main_retention

    return main_retention(_settings(), dry_run=args.dry_run)


def _rotate_key(args: argparse.Namespace) -> int:
    """The new key comes from the usual key settings."""
    from ingest.rotation import RotationError, rotate_key
    from ingest.storage.landing import open_configured_landing
    from pseudonymise.tokens import Tokeniser

    settings = _settings()
    tokeniser = Tokeniser(settings.key("PSEUDONYM"))
    try:
        result = rotate_key(
            open_configured_landing(settings),
            settings.warehouse_url,
            tokeniser,
            allow_loss=args.allow_loss,
            target_url=args.target_url,
            keep_old=args.keep_old,
        )
    except RotationError as exc:
        print(f"Key rotation stopped, nothing changed: {exc}")
        return 2
    _print_rotation(result)
    return 0


def _settings() -> Settings:
    from ingest.settings import Settings

    return Settings.from_env()


def _print_rotation(result: RotationResult) -> None:
    print(
        f"Rebuilt the warehouse under key {result.new_key_id} (was "
        f"{', '.join(result.old_key_ids) or 'empty'}): {result.submissions_replayed} file(s) "
        f"replayed; rows: " + ", ".join(f"{k} {v}" for k, v in sorted(result.rows.items()))
    )
    if result.returns_lost:
        pairs = sorted({f"{r.la_code} x {r.dataset or 'whole file'}" for r in result.returns_lost})
        print(f"Dropped (raw file deleted by retention): {', '.join(pairs)}")
    if result.unprocessed:
        print(f"{result.unprocessed} landed file(s) never processed were left out")
    if result.swapped:
        print(f"Swapped in: {result.target_url}")
        if result.retired_schemas:
            print(
                "Kept the old warehouse's schemas, which still hold the old tokens: drop them "
                "(DROP SCHEMA ... CASCADE) once done: " + ", ".join(result.retired_schemas)
            )
    else:
        print(f"Verified in {result.target_url}: now point TRIAL_WAREHOUSE_URL at it")
