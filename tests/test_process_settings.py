"""What importing the service sets for its process before polars loads (ingest/__init__.py)."""

from __future__ import annotations

import os
import subprocess
import sys

ALLOCATOR = "_RJEM_MALLOC_CONF"  # polars adds its defaults in front when it is first imported


def allocator_setting_seen_by_polars(env: dict[str, str]) -> str:
    code = (
        "import sys, os, ingest; "
        "assert 'polars' not in sys.modules, 'polars loaded before the setting'; "
        "import polars; "
        f"print(os.environ[{ALLOCATOR!r}])"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return completed.stdout.strip()


def test_polars_gives_freed_pages_back_at_once_from_one_arena() -> None:
    env = {k: v for k, v in os.environ.items() if k != ALLOCATOR}
    # jemalloc applies the options in order: the last one of a name is the one in force.
    assert allocator_setting_seen_by_polars(env).split(",")[-2:] == [
        "muzzy_decay_ms:0",
        "narenas:1",
    ]


def test_an_operators_own_allocator_setting_wins() -> None:
    env = {**os.environ, ALLOCATOR: "muzzy_decay_ms:5000"}
    assert allocator_setting_seen_by_polars(env).split(",")[-1] == "muzzy_decay_ms:5000"
