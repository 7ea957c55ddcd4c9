"""Every setting of the service, read from the environment in one place.

`Settings.from_env` reads each documented variable once, checks what can be checked without
touching a server or a key, and refuses with every reason at once (`ConfigurationError`). The
resources, the command line, retention and key rotation all take a `Settings`; no other module
reads the environment. Settings that only some commands need (the drop, the landing store, the
keys) may be unset here: the command that needs one says what to set (`require`).

The standard AWS variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, …) are not
here: boto3's own credential chain reads them, for S3 and Secrets Manager alike.

Key material is never held here: only which variable names the key and its value (key text,
a file's path or a secret's id), hidden from `repr`. `pseudonymise.keys.load_key` turns that
into a key when one is needed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pseudonymise.keys import TrialKey, load_key

TRIAL_HOME = "TRIAL_HOME"
DROP_URL = "TRIAL_DROP_URL"
WAREHOUSE_URL = "TRIAL_WAREHOUSE_URL"
LANDING_URL = "TRIAL_LANDING_URL"
ALLOCATION_FILE = "TRIAL_ALLOCATION_FILE"
LANDING_S3_SSE = "TRIAL_LANDING_S3_SSE"
SFTP_KEY_FILE = "TRIAL_SFTP_KEY_FILE"
SFTP_HOST_KEY = "TRIAL_SFTP_HOST_KEY"
SFTP_KNOWN_HOSTS = "TRIAL_SFTP_KNOWN_HOSTS"
RETENTION_DAYS = "TRIAL_RETENTION_DAYS"
QUALITY_DIR = "TRIAL_QUALITY_DIR"
DAGSTER_HOME = "DAGSTER_HOME"
DAGSTER_PG_URL = "TRIAL_DAGSTER_PG_URL"

KEY_PURPOSES = ("PSEUDONYM", "LANDING")
KEY_SUFFIXES = ("", "_FILE", "_SECRET_ID")  # key text, a key file, a Secrets Manager secret id
KEY_VARIABLES = tuple(f"TRIAL_{p}_KEY{s}" for p in KEY_PURPOSES for s in KEY_SUFFIXES)

VARIABLES = (
    TRIAL_HOME,
    DROP_URL,
    WAREHOUSE_URL,
    LANDING_URL,
    ALLOCATION_FILE,
    *KEY_VARIABLES,
    LANDING_S3_SSE,
    SFTP_KEY_FILE,
    SFTP_HOST_KEY,
    SFTP_KNOWN_HOSTS,
    RETENTION_DAYS,
    QUALITY_DIR,
    DAGSTER_HOME,
    DAGSTER_PG_URL,
)
"""Every variable the service reads (the README's configuration and production tables)."""

DEFAULT_TRIAL_HOME = "var"
DEFAULT_RETENTION_DAYS = 730
SSE_CHOICES = ("AES256", "aws:kms")


class ConfigurationError(RuntimeError):
    """A setting is missing or malformed; the message names the variable, never a secret."""


@dataclass(frozen=True)
class SftpSettings:
    """The SFTP drop's login key file and the server's pinned host key(s): key lines or a
    known_hosts file (the drop refuses both, or neither, when it opens)."""

    key_file: str | None = None
    host_key_lines: str | None = None
    known_hosts_file: str | None = None


@dataclass(frozen=True)
class Settings:
    trial_home: Path
    warehouse_url: str = field(repr=False)  # may carry a password
    drop_url: str | None = field(default=None, repr=False)
    landing_url: str | None = field(default=None, repr=False)
    allocation_file: Path | None = None
    key_sources: Mapping[str, str] = field(default_factory=dict, repr=False)
    landing_s3_sse: str | None = None
    sftp: SftpSettings = SftpSettings()
    retention_days: int = DEFAULT_RETENTION_DAYS
    quality_dir: Path = Path(DEFAULT_TRIAL_HOME, "quality")
    dagster_home: Path = Path(DEFAULT_TRIAL_HOME, "dagster")
    dagster_pg_url: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings in `env` (default: the process environment), or every reason not."""
        values = _read(os.environ if env is None else env)
        problems: list[str] = []
        home = Path(values.get(TRIAL_HOME) or DEFAULT_TRIAL_HOME).expanduser().absolute()
        settings = cls(
            trial_home=home,
            warehouse_url=values.get(WAREHOUSE_URL) or duckdb_url(home / "warehouse.duckdb"),
            drop_url=values.get(DROP_URL),
            landing_url=values.get(LANDING_URL),
            allocation_file=_path(values.get(ALLOCATION_FILE)),
            key_sources={name: values[name] for name in KEY_VARIABLES if name in values},
            landing_s3_sse=_sse(values.get(LANDING_S3_SSE), problems),
            sftp=_sftp(values),
            retention_days=_retention_days(values.get(RETENTION_DAYS), problems),
            quality_dir=_path(values.get(QUALITY_DIR)) or home / "quality",
            dagster_home=_path(values.get(DAGSTER_HOME)) or home / "dagster",
            dagster_pg_url=values.get(DAGSTER_PG_URL),
        )
        if problems:
            raise ConfigurationError("; ".join(problems))
        return settings

    @property
    def warehouse_kind(self) -> str:
        """The warehouse's kind as the Dagster UI labels it: `duckdb` or `postgres`."""
        backend = self.warehouse_url.split(":", 1)[0].split("+", 1)[0].lower()
        return "postgres" if backend.startswith("postgres") else backend

    def key_variables(self, purpose: str) -> dict[str, str]:
        """The variables that may name the `purpose` key, as `load_key` takes them."""
        prefix = f"TRIAL_{purpose}_KEY"
        return {name: value for name, value in self.key_sources.items() if _is_key(name, prefix)}

    def key(self, purpose: str) -> TrialKey:
        """The `purpose` key (``PSEUDONYM`` or ``LANDING``) from the one source that names it."""
        return load_key(purpose, self.key_variables(purpose))

    def require(self, variable: str, what: str) -> str:
        """The value of a URL or path setting a command needs, or why it cannot go on."""
        value = {
            DROP_URL: self.drop_url,
            LANDING_URL: self.landing_url,
            ALLOCATION_FILE: self.allocation_file,
        }[variable]
        if value is None:
            raise ConfigurationError(f"{variable} is not set: it names {what}")
        return str(value)


def process_environment() -> dict[str, str]:
    """A copy of the process's environment: what a command hands on to Dagster and its child
    processes."""
    return dict(os.environ)


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """Run with exactly `env` as the process environment, then put the old one back.

    Dagster resolves the resources' `EnvVar`s from the process environment when a run or a
    sensor tick starts, so a command runs its Dagster work inside this.
    """
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def duckdb_url(path: Path) -> str:
    return f"duckdb:///{path}"


def _read(env: Mapping[str, str]) -> dict[str, str]:
    """The set, non-blank variables, stripped."""
    return {name: env[name].strip() for name in VARIABLES if env.get(name, "").strip()}


def _is_key(name: str, prefix: str) -> bool:
    return name.startswith(prefix) and name.removeprefix(prefix) in KEY_SUFFIXES


def _path(text: str | None) -> Path | None:
    return Path(text).expanduser().absolute() if text else None


def _sse(text: str | None, problems: list[str]) -> str | None:
    if text is not None and text not in SSE_CHOICES:
        problems.append(f"{LANDING_S3_SSE} must be one of {', '.join(SSE_CHOICES)} (or unset)")
    return text


def _retention_days(text: str | None, problems: list[str]) -> int:
    if text is None:
        return DEFAULT_RETENTION_DAYS
    if not text.isdigit() or int(text) < 1:
        problems.append(f"{RETENTION_DAYS} must be a whole number of days, at least 1")
        return DEFAULT_RETENTION_DAYS
    return int(text)


def _sftp(values: Mapping[str, str]) -> SftpSettings:
    return SftpSettings(
        key_file=values.get(SFTP_KEY_FILE),
        host_key_lines=values.get(SFTP_HOST_KEY),
        known_hosts_file=values.get(SFTP_KNOWN_HOSTS),
    )
