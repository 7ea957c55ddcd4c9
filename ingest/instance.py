"""The service's Dagster instance and the environment its runs see.

DAGSTER_HOME defaults to `$TRIAL_HOME/dagster` and is given the repository's `dagster.yaml`
(or `dagster-postgres.yaml` when TRIAL_DAGSTER_PG_URL is set). Runs read their settings from
the process environment (the resources' EnvVars), so the service's commands run inside
`ingest.settings.environment`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.settings import (
    DAGSTER_HOME,
    DAGSTER_PG_URL,
    ConfigurationError,
    Settings,
    environment,
)

if TYPE_CHECKING:
    from dagster import DagsterInstance, Definitions

REPOSITORY = Path(__file__).resolve().parents[1]
INSTANCE_FILES = {"sqlite": "dagster.yaml", "postgres": "dagster-postgres.yaml"}
INSTANCE_MARKER = "# trial-ingest: Dagster instance configuration"


class RunnerError(RuntimeError):
    """The service cannot start: the message says which setting to fix."""


def service_settings(env: Mapping[str, str]) -> Settings:
    """The settings in `env`, or a `RunnerError` with every reason they are refused."""
    try:
        return Settings.from_env(env)
    except ConfigurationError as exc:
        raise RunnerError(str(exc)) from None


def prepare_dagster_home(settings: Settings) -> Path:
    """Create DAGSTER_HOME and give it the service's instance configuration.

    A `dagster.yaml` that an operator wrote (without the service's marker line) is left alone.
    """
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    storage = "postgres" if settings.dagster_pg_url else "sqlite"
    source = REPOSITORY / INSTANCE_FILES[storage]
    if not source.is_file():
        raise RunnerError(f"the instance configuration {source} is missing")
    target = home / "dagster.yaml"
    if not target.exists() or target.read_text(encoding="utf-8").startswith(INSTANCE_MARKER):
        shutil.copyfile(source, target)
    return home


def service_environment(env: Mapping[str, str], settings: Settings) -> dict[str, str]:
    """`env` with DAGSTER_HOME made absolute and defaulted, and Dagster's PostgreSQL URL given
    the psycopg2 driver, which its storage needs and SQLAlchemy 2.1 no longer picks itself."""
    service = {**env, DAGSTER_HOME: str(settings.dagster_home)}
    pg_url = settings.dagster_pg_url or ""
    for bare in ("postgresql://", "postgres://"):
        if pg_url.startswith(bare):
            service[DAGSTER_PG_URL] = "postgresql+psycopg2://" + pg_url.removeprefix(bare)
    return service


@contextmanager
def service_instance(
    env: Mapping[str, str], settings: Settings
) -> Iterator[tuple[Definitions, DagsterInstance]]:
    """The service's definitions and its Dagster instance, with `env` as the process
    environment meanwhile.

    `env` is a `service_environment`, so DAGSTER_HOME is set and absolute.
    """
    from dagster import DagsterInstance

    from ingest.definitions import build_definitions

    with environment(env):
        prepare_dagster_home(settings)
        defs = build_definitions(env)
        with DagsterInstance.get() as instance:
            yield defs, instance
