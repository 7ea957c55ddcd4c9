"""`Settings`: every documented variable read in one place, every refusal with its reason."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ingest.settings import (
    DEFAULT_RETENTION_DAYS,
    KEY_VARIABLES,
    VARIABLES,
    ConfigurationError,
    Settings,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def documented_variables() -> set[str]:
    """The service's own variables in the README's configuration and production tables."""
    text = README.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    names = {name for row in rows for name in re.findall(r"`((?:TRIAL|DAGSTER)_[A-Z0-9_]+)", row)}
    return names


def test_every_variable_the_readme_documents_is_a_setting() -> None:
    documented = documented_variables()
    assert "TRIAL_PSEUDONYM_KEY_SECRET_ID" in documented  # the table was read
    assert documented <= set(VARIABLES)


def test_defaults_live_under_trial_home(tmp_path: Path) -> None:
    settings = Settings.from_env({"TRIAL_HOME": str(tmp_path)})

    assert settings.warehouse_url == f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    assert settings.warehouse_kind == "duckdb"
    assert settings.dagster_home == tmp_path / "dagster"
    assert settings.quality_dir == tmp_path / "quality"
    assert settings.retention_days == DEFAULT_RETENTION_DAYS
    assert settings.drop_url is None and settings.landing_s3_sse is None


def test_set_values_are_read_stripped() -> None:
    settings = Settings.from_env(
        {
            "TRIAL_WAREHOUSE_URL": " postgresql+psycopg://u@h:5432/w ",
            "TRIAL_RETENTION_DAYS": " 90 ",
            "TRIAL_LANDING_S3_SSE": "aws:kms",
            "TRIAL_SFTP_HOST_KEY": "ssh-ed25519 AAAA",
            "TRIAL_PSEUDONYM_KEY_SECRET_ID": "trial/pseudonym",
            "TRIAL_LANDING_KEY_FILE": "/etc/trial/landing.key",
            "UNRELATED": "ignored",
        }
    )

    assert settings.warehouse_kind == "postgres"
    assert settings.retention_days == 90
    assert settings.landing_s3_sse == "aws:kms"
    assert settings.sftp.host_key_lines == "ssh-ed25519 AAAA"
    assert settings.key_variables("PSEUDONYM") == {
        "TRIAL_PSEUDONYM_KEY_SECRET_ID": "trial/pseudonym"
    }
    assert settings.key_variables("LANDING") == {"TRIAL_LANDING_KEY_FILE": "/etc/trial/landing.key"}


def test_every_refusal_is_given_at_once() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(
            {
                "TRIAL_RETENTION_DAYS": "two years",
                "TRIAL_LANDING_S3_SSE": "yes",
            }
        )

    message = str(caught.value)
    for variable in ("TRIAL_RETENTION_DAYS", "TRIAL_LANDING_S3_SSE"):
        assert variable in message
    assert "two years" not in message


@pytest.mark.parametrize("bad", ["0", "-1", "1.5", "forever"])
def test_retention_days_must_be_a_whole_number_of_at_least_one(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="TRIAL_RETENTION_DAYS"):
        Settings.from_env({"TRIAL_RETENTION_DAYS": bad})


def test_secrets_never_show_in_repr() -> None:
    key_text = "tik1:" + "A" * 43
    settings = Settings.from_env(
        {
            "TRIAL_PSEUDONYM_KEY": key_text,
            "TRIAL_WAREHOUSE_URL": "postgresql://u:hunter2@h/w",
            "TRIAL_DROP_URL": "s3://drop",
        }
    )

    shown = repr(settings)
    assert key_text not in shown and "hunter2" not in shown


def test_a_required_setting_names_its_variable() -> None:
    settings = Settings.from_env({})

    with pytest.raises(ConfigurationError, match="TRIAL_DROP_URL is not set"):
        settings.require("TRIAL_DROP_URL", "the LA drop")


def test_key_variables_cover_each_purpose_and_source() -> None:
    assert len(KEY_VARIABLES) == 6
    assert {"TRIAL_LANDING_KEY_SECRET_ID", "TRIAL_PSEUDONYM_KEY"} <= set(KEY_VARIABLES)


# Modules that set a variable for a library before it loads; they read no setting.
PROCESS_SET_UP = {
    "ingest/__init__.py": "polars' allocator settings, before polars is imported",
    "ingest/quality.py": "great-expectations' analytics off, before it is imported",
}


def environment_readers() -> set[str]:
    """The service's modules that name `os.environ` or `os.getenv`."""
    root = README.parent
    found = set()
    for package in ("ingest", "schemas", "pseudonymise"):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                    found.add(path.relative_to(root).as_posix())
    return found


def test_no_module_but_settings_reads_the_environment() -> None:
    assert environment_readers() - set(PROCESS_SET_UP) == {"ingest/settings.py"}
