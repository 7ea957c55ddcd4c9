"""The service's Dagster resources: its settings, keys, drop, landing store, warehouse, allocation.

`ServiceSettings` carries every variable of `ingest.settings.VARIABLES`, each wired in as an
`EnvVar` when it is set, so the Dagster UI shows the variable's name, never its value (URLs may
carry credentials; keys are secret). Inside a run or a sensor tick it becomes the same
`Settings` the command line builds, so a setting the command line accepts takes effect in the
runs too. A variable that is not set is left empty and the resource that needs it says what to
set when it is used, so the definitions always load.

The drop, landing and warehouse resources open what they hold on first use and close it when
the run or tick ends (`teardown_after_execution`): no caller closes anything by hand. Heavy
modules (the warehouse, the landing store's cryptography) are imported on first use, not when
the definitions load.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource, EnvVar, InitResourceContext
from pydantic import PrivateAttr

from ingest.settings import ALLOCATION_FILE, VARIABLES, Settings
from pseudonymise.keys import TrialKey

if TYPE_CHECKING:
    from ingest.storage.drop import Drop
    from ingest.storage.landing import Landing
    from ingest.warehouse import Warehouse


def setting_field(variable: str) -> str:
    """The resource field that carries `variable`: `TRIAL_DROP_URL` -> `trial_drop_url`."""
    return variable.lower()


class ServiceSettings(ConfigurableResource):  # type: ignore[type-arg]
    """Every setting of the service, one field per variable of `ingest.settings.VARIABLES`."""

    trial_home: str = ""
    trial_drop_url: str = ""
    trial_warehouse_url: str = ""
    trial_landing_url: str = ""
    trial_allocation_file: str = ""
    trial_pseudonym_key: str = ""
    trial_pseudonym_key_file: str = ""
    trial_pseudonym_key_secret_id: str = ""
    trial_landing_key: str = ""
    trial_landing_key_file: str = ""
    trial_landing_key_secret_id: str = ""
    trial_landing_s3_sse: str = ""
    trial_sftp_key_file: str = ""
    trial_sftp_host_key: str = ""
    trial_sftp_known_hosts: str = ""
    trial_retention_days: str = ""
    trial_quality_dir: str = ""
    dagster_home: str = ""
    trial_dagster_pg_url: str = ""

    def get(self) -> Settings:
        values = {variable: getattr(self, setting_field(variable)) for variable in VARIABLES}
        return Settings.from_env(values)


class TrialKeysResource(ConfigurableResource):  # type: ignore[type-arg]
    """The pseudonymisation key, from exactly one source (key text, a key file or a Secrets
    Manager secret), as `pseudonymise.keys.load_key` decides. (The landing key is read where
    the drop and the landing store are opened: `ingest.storage`.)"""

    settings: ServiceSettings

    def pseudonym(self) -> TrialKey:
        return self.settings.get().key("PSEUDONYM")


class DropResource(ConfigurableResource):  # type: ignore[type-arg]
    """The LA drop (TRIAL_DROP_URL). Files are fingerprinted under the landing key: the key of
    the raw-file side of the service, so the sensor never needs the pseudonymisation key."""

    settings: ServiceSettings
    _drop: Drop | None = PrivateAttr(default=None)

    def get(self) -> Drop:
        """The drop, opened on first use in this run or tick."""
        if self._drop is None:
            from ingest.storage.drop import open_configured_drop

            self._drop = open_configured_drop(self.settings.get())
        return self._drop

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._drop is not None:
            self._drop.close()  # an SFTP drop's session ends with the run or tick


class LandingResource(ConfigurableResource):  # type: ignore[type-arg]
    """The encrypted landing store of raw files (TRIAL_LANDING_URL)."""

    settings: ServiceSettings
    _landing: Landing | None = PrivateAttr(default=None)

    def get(self) -> Landing:
        if self._landing is None:
            from ingest.storage.landing import open_configured_landing

            self._landing = open_configured_landing(self.settings.get())
        return self._landing


class WarehouseResource(ConfigurableResource):  # type: ignore[type-arg]
    """The warehouse (TRIAL_WAREHOUSE_URL, a SQLAlchemy URL; by default DuckDB under
    TRIAL_HOME)."""

    settings: ServiceSettings
    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def get(self) -> Warehouse:
        if self._warehouse is None:
            from ingest.warehouse import Warehouse

            self._warehouse = Warehouse(self.settings.get().warehouse_url)
        return self._warehouse

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._warehouse is not None:
            self._warehouse.dispose()  # a PostgreSQL warehouse's pool ends with the run


class AllocationResource(ConfigurableResource):  # type: ignore[type-arg]
    """The evaluator's trial allocation file (TRIAL_ALLOCATION_FILE)."""

    settings: ServiceSettings

    def file(self) -> Path:
        return Path(self.settings.get().require(ALLOCATION_FILE, "the trial allocation CSV"))


def _from_env(env: Mapping[str, str], variable: str) -> Any:
    """An `EnvVar` when the variable is set (the UI then masks it), else empty."""
    return EnvVar(variable) if env.get(variable, "").strip() else ""


def build_resources(env: Mapping[str, str]) -> dict[str, ConfigurableResource]:  # type: ignore[type-arg]
    """The resources keyed as the assets, checks, sensors and schedules ask for them."""
    settings = ServiceSettings(
        **{setting_field(variable): _from_env(env, variable) for variable in VARIABLES}
    )
    trial_keys = TrialKeysResource(settings=settings)
    return {
        "settings": settings,
        "trial_keys": trial_keys,
        "drop": DropResource(settings=settings),
        "landing": LandingResource(settings=settings),
        "warehouse": WarehouseResource(settings=settings),
        "allocation": AllocationResource(settings=settings),
    }


__all__ = [
    "AllocationResource",
    "DropResource",
    "LandingResource",
    "ServiceSettings",
    "TrialKeysResource",
    "WarehouseResource",
    "build_resources",
    "setting_field",
]
