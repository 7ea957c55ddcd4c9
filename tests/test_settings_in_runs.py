"""Every documented setting takes effect inside a Dagster run, not only in the command line's
pre-check: the keys from AWS Secrets Manager (against moto's server), and each of the other
variables as the run's resources see it."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest
import sqlalchemy as sa
from dagster import asset, materialize
from servers import S3Bucket
from test_dagster_definitions import TrialService, people_csv, service
from test_settings import documented_variables

from ingest.resources import ServiceSettings, build_resources
from ingest.settings import KEY_VARIABLES, VARIABLES, Settings, environment
from pseudonymise.keys import new_key_text, parse_key_text

__all__ = ["service"]


def every_variable(tmp_path: Path) -> dict[str, str]:
    """A value for every variable the service reads, each valid and told apart from the rest
    (only one key source per purpose can be in force, so the key variables are tried apart)."""
    return {
        "TRIAL_HOME": str(tmp_path / "home"),
        "TRIAL_DROP_URL": "sftp://svc@127.0.0.1:2222/srv/drop",
        "TRIAL_WAREHOUSE_URL": "postgresql+psycopg://svc@127.0.0.1:5432/warehouse",
        "TRIAL_LANDING_URL": "s3://trial-landing/raw",
        "TRIAL_ALLOCATION_FILE": str(tmp_path / "allocation.csv"),
        "TRIAL_LANDING_S3_SSE": "aws:kms",
        "TRIAL_SFTP_KEY_FILE": str(tmp_path / "sftp_ed25519"),
        "TRIAL_SFTP_HOST_KEY": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
        "TRIAL_SFTP_KNOWN_HOSTS": str(tmp_path / "known_hosts"),
        "TRIAL_RETENTION_DAYS": "90",
        "TRIAL_QUALITY_DIR": str(tmp_path / "quality"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "TRIAL_DAGSTER_PG_URL": "postgresql://svc@127.0.0.1:5432/dagster",
    }


def settings_seen_in_a_run(env: dict[str, str]) -> Settings:
    """The `Settings` an asset sees inside a Dagster run of the service's resources."""
    seen: list[Settings] = []

    @asset
    def reads_settings(settings: ServiceSettings) -> None:
        seen.append(settings.get())

    with environment(env):
        result = materialize([reads_settings], resources=build_resources(env))
    assert result.success
    [settings] = seen
    return settings


def test_every_variable_changes_the_settings(tmp_path: Path) -> None:
    env = every_variable(tmp_path)
    full = Settings.from_env(env)
    for variable in env:
        assert Settings.from_env({k: v for k, v in env.items() if k != variable}) != full, variable
    for variable in KEY_VARIABLES:
        assert Settings.from_env({variable: "x"}) != Settings.from_env({}), variable


def test_every_documented_variable_reaches_a_dagster_run(tmp_path: Path) -> None:
    assert documented_variables() <= set(VARIABLES)
    env = every_variable(tmp_path)
    assert settings_seen_in_a_run(env) == Settings.from_env(env)
    for suffix in ("", "_FILE", "_SECRET_ID"):
        keys = {f"TRIAL_PSEUDONYM_KEY{suffix}": "a", f"TRIAL_LANDING_KEY{suffix}": "b"}
        seen = settings_seen_in_a_run(env | keys)
        assert seen.key_variables("PSEUDONYM") == {f"TRIAL_PSEUDONYM_KEY{suffix}": "a"}
        assert seen.key_variables("LANDING") == {f"TRIAL_LANDING_KEY{suffix}": "b"}


@pytest.mark.slow
def test_keys_from_secrets_manager_work_through_a_dagster_run(
    s3_bucket: S3Bucket, service: TrialService
) -> None:
    """The README's production path: both keys from AWS Secrets Manager (moto on loopback)."""
    pseudonym_text, landing_text = new_key_text(), new_key_text()
    secrets = boto3.client("secretsmanager", endpoint_url=s3_bucket.endpoint_url)
    for purpose, key_text in (("PSEUDONYM", pseudonym_text), ("LANDING", landing_text)):
        secret_id = f"trial/{s3_bucket.name}/{purpose.lower()}"  # the server outlives a test
        secrets.create_secret(Name=secret_id, SecretString=key_text)
        del service.env[f"TRIAL_{purpose}_KEY"]
        os.environ.pop(f"TRIAL_{purpose}_KEY", None)
        service.env[f"TRIAL_{purpose}_KEY_SECRET_ID"] = secret_id
    service.reload()
    service.deliver("201", "people.csv", people_csv(4))

    summary = service.run()

    assert [f.status for f in summary.files] == ["accepted"]
    assert len(service.clean_people("201")) == 4
    warehouse = service.warehouse()
    table = warehouse.table("clean", "people")
    with warehouse.engine.connect() as conn:
        key_ids = set(conn.execute(sa.select(table.c.key_id).distinct()).scalars())
    warehouse.dispose()
    assert key_ids == {parse_key_text(pseudonym_text).key_id}  # tokens under the secret's key
