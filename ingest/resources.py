"""The service's resources (drop, landing store, keys, warehouse), configured from the environment.

Every setting that comes from the environment is wired in as an `EnvVar`, so the Dagster UI
shows the variable's name, never its value (URLs may carry credentials; keys are secret). A
variable that is not set is left empty and the resource explains what to set when it is used,
so the definitions always load.

Heavy modules (the warehouse, the landing store's cryptography) are imported when a resource is
opened, not when the definitions are loaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import ConfigurableResource, EnvVar

from pseudonymise.keys import KeyConfigError, TrialKey, load_key

if TYPE_CHECKING:
    from ingest.storage.drop import Drop
    from ingest.storage.landing import Landing
    from ingest.warehouse import Warehouse

DROP_URL = "TRIAL_DROP_URL"
WAREHOUSE_URL = "TRIAL_WAREHOUSE_URL"
LANDING_URL = "TRIAL_LANDING_URL"
ALLOCATION_FILE = "TRIAL_ALLOCATION_FILE"
TRIAL_HOME = "TRIAL_HOME"
PSEUDONYM_KEY = "TRIAL_PSEUDONYM_KEY"
PSEUDONYM_KEY_FILE = "TRIAL_PSEUDONYM_KEY_FILE"
LANDING_KEY = "TRIAL_LANDING_KEY"
LANDING_KEY_FILE = "TRIAL_LANDING_KEY_FILE"

DEFAULT_TRIAL_HOME = "var"


class ConfigurationError(RuntimeError):
    """A setting the service needs is missing; the message names the environment variable."""


def trial_home(env: Mapping[str, str]) -> Path:
    """Where the embedded defaults live (DuckDB warehouse, Dagster home): TRIAL_HOME or ./var."""
    return Path(env.get(TRIAL_HOME) or DEFAULT_TRIAL_HOME).expanduser().absolute()


def default_warehouse_url(env: Mapping[str, str]) -> str:
    return f"duckdb:///{trial_home(env) / 'warehouse.duckdb'}"


def warehouse_kind(env: Mapping[str, str]) -> str:
    """The warehouse's kind as the Dagster UI labels it: `duckdb` or `postgres`."""
    url = env.get(WAREHOUSE_URL, "").strip() or default_warehouse_url(env)
    backend = url.split(":", 1)[0].split("+", 1)[0].lower()
    return "postgres" if backend.startswith("postgres") else backend


def _required(value: str, variable: str, what: str) -> str:
    if not value.strip():
        raise ConfigurationError(f"{variable} is not set: it names {what}")
    return value.strip()


class TrialKeysResource(ConfigurableResource):  # type: ignore[type-arg]
    """The pseudonymisation key and the landing-store key: each as key text or a key file.

    `pseudonymise.keys.load_key` decides, exactly as it does everywhere else, that exactly one
    source is set per key and that a key file is readable by the service only.
    """

    pseudonym_key: str = ""
    pseudonym_key_file: str = ""
    landing_key: str = ""
    landing_key_file: str = ""

    def pseudonym(self) -> TrialKey:
        return load_key(
            "PSEUDONYM",
            {PSEUDONYM_KEY: self.pseudonym_key, PSEUDONYM_KEY_FILE: self.pseudonym_key_file},
        )

    def landing(self) -> TrialKey:
        return load_key(
            "LANDING", {LANDING_KEY: self.landing_key, LANDING_KEY_FILE: self.landing_key_file}
        )


class DropResource(ConfigurableResource):  # type: ignore[type-arg]
    """The LA drop (TRIAL_DROP_URL). Files are fingerprinted under the landing key: the key of
    the raw-file side of the service, so the sensor never needs the pseudonymisation key."""

    url: str = ""
    trial_keys: TrialKeysResource

    def open(self) -> Drop:
        from ingest.storage.drop import open_drop

        return open_drop(_required(self.url, DROP_URL, "the LA drop"), self.trial_keys.landing())


class LandingResource(ConfigurableResource):  # type: ignore[type-arg]
    """The encrypted landing store of raw files (TRIAL_LANDING_URL)."""

    url: str = ""
    trial_keys: TrialKeysResource

    def open(self) -> Landing:
        from ingest.storage.landing import open_landing

        url = _required(self.url, LANDING_URL, "the encrypted landing store of raw files")
        return open_landing(url, self.trial_keys.landing())


class WarehouseResource(ConfigurableResource):  # type: ignore[type-arg]
    """The warehouse (TRIAL_WAREHOUSE_URL, a SQLAlchemy URL)."""

    url: str

    def open(self) -> Warehouse:
        from ingest.warehouse import Warehouse

        return Warehouse(self.url)


class AllocationResource(ConfigurableResource):  # type: ignore[type-arg]
    """The evaluator's trial allocation file (TRIAL_ALLOCATION_FILE)."""

    path: str = ""

    def file(self) -> Path:
        return Path(_required(self.path, ALLOCATION_FILE, "the trial allocation CSV"))


def _from_env(env: Mapping[str, str], variable: str, default: str = "") -> str:
    """An `EnvVar` when the variable is set (the UI then masks it), else the default."""
    return EnvVar(variable) if env.get(variable, "").strip() else default


def build_resources(
    env: Mapping[str, str] | None = None,
) -> dict[str, ConfigurableResource]:  # type: ignore[type-arg]
    """The resources keyed as the assets and the sensor ask for them."""
    env = os.environ if env is None else env
    trial_keys = TrialKeysResource(
        pseudonym_key=_from_env(env, PSEUDONYM_KEY),
        pseudonym_key_file=_from_env(env, PSEUDONYM_KEY_FILE),
        landing_key=_from_env(env, LANDING_KEY),
        landing_key_file=_from_env(env, LANDING_KEY_FILE),
    )
    return {
        "trial_keys": trial_keys,
        "drop": DropResource(url=_from_env(env, DROP_URL), trial_keys=trial_keys),
        "landing": LandingResource(url=_from_env(env, LANDING_URL), trial_keys=trial_keys),
        "warehouse": WarehouseResource(
            url=_from_env(env, WAREHOUSE_URL, default_warehouse_url(env))
        ),
        "allocation": AllocationResource(path=_from_env(env, ALLOCATION_FILE)),
    }


__all__ = [
    "AllocationResource",
    "ConfigurationError",
    "DropResource",
    "KeyConfigError",
    "LandingResource",
    "TrialKeysResource",
    "WarehouseResource",
    "build_resources",
    "default_warehouse_url",
    "trial_home",
]
