"""The service's Dagster instance and the environment its runs see.

DAGSTER_HOME defaults to `$TRIAL_HOME/dagster` and is given the repository's `dagster.yaml`
(or `dagster-postgres.yaml` when TRIAL_DAGSTER_PG_URL is set). Runs read their settings from
os.environ (the resources' EnvVars), so the service's commands run inside `environment`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.resources import trial_home

if TYPE_CHECKING:
    from dagster import DagsterInstance, Definitions

REPOSITORY = Path(__file__).resolve().parents[1]
INSTANCE_FILES = {"sqlite": "dagster.yaml", "postgres": "dagster-postgres.yaml"}
INSTANCE_MARKER = "# trial-ingest: Dagster instance configuration"
DAGSTER_PG_URL = "TRIAL_DAGSTER_PG_URL"


class RunnerError(RuntimeError):
    """The service cannot start: the message says which setting to fix."""


def dagster_home(env: Mapping[str, str]) -> Path:
    home = env.get("DAGSTER_HOME", "").strip()
    return Path(home).expanduser().absolute() if home else trial_home(env) / "dagster"


def prepare_dagster_home(env: Mapping[str, str]) -> Path:
    """Create DAGSTER_HOME and give it the service's instance configuration.

    A `dagster.yaml` that an operator wrote (without the service's marker line) is left alone.
    """
    home = dagster_home(env)
    home.mkdir(parents=True, exist_ok=True)
    storage = "postgres" if env.get(DAGSTER_PG_URL, "").strip() else "sqlite"
    source = REPOSITORY / INSTANCE_FILES[storage]
    if not source.is_file():
        raise RunnerError(f"the instance configuration {source} is missing")
    target = home / "dagster.yaml"
    if not target.exists() or target.read_text(encoding="utf-8").startswith(INSTANCE_MARKER):
        shutil.copyfile(source, target)
    return home


def service_environment(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with DAGSTER_HOME made absolute and defaulted, and Dagster's PostgreSQL URL given
    the psycopg2 driver, which its storage needs and SQLAlchemy 2.1 no longer picks itself."""
    service = {**env, "DAGSTER_HOME": str(dagster_home(env))}
    pg_url = env.get(DAGSTER_PG_URL, "").strip()
    for bare in ("postgresql://", "postgres://"):
        if pg_url.startswith(bare):
            service[DAGSTER_PG_URL] = "postgresql+psycopg2://" + pg_url.removeprefix(bare)
    return service


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """Run with exactly `env` as os.environ (resources read their EnvVars from it)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def service_instance(env: Mapping[str, str]) -> Iterator[tuple[Definitions, DagsterInstance]]:
    """The service's definitions and its Dagster instance, with `env` as os.environ meanwhile.

    `env` is a `service_environment`, so DAGSTER_HOME is set and absolute.
    """
    from dagster import DagsterInstance

    from ingest.definitions import build_definitions

    with environment(env):
        prepare_dagster_home(env)
        defs = build_definitions(env)
        with DagsterInstance.get() as instance:
            yield defs, instance
