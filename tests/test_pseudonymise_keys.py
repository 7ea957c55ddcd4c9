"""Trial keys and their providers: refusal of weak or unsafe keys, and no key material in any
repr or error."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import os
from pathlib import Path

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.settings import Settings
from pseudonymise.keys import (
    KeyConfigError,
    TrialKey,
    load_key,
    new_key_text,
    parse_key_text,
)
from tests.servers import S3Bucket

SECRET = bytes(range(100, 132))
KEY_TEXT = "tik1:" + base64.urlsafe_b64encode(SECRET).rstrip(b"=").decode()


def _secret_forms(secret: bytes, text: str | None = None) -> list[str]:
    """Every way key material could show up in a message."""
    body = base64.urlsafe_b64encode(secret).rstrip(b"=").decode()
    forms = [secret.hex(), repr(secret), body, body[:12], str(secret)]
    return [*forms, text] if text else forms


def _assert_clean(exc: BaseException, *forms: str) -> None:
    shown = str(exc) + repr(exc)
    for form in forms:
        assert form not in shown
    assert exc.__context__ is None
    assert exc.__cause__ is None


# --- TrialKey --------------------------------------------------------------------------


def test_key_id_is_derived_and_public() -> None:
    key = TrialKey(SECRET)
    digest = hmac.new(SECRET, b"trial-ingest key id", hashlib.sha256).hexdigest()
    assert key.key_id == "k1-" + digest[:16]
    assert TrialKey(SECRET).key_id == key.key_id
    assert TrialKey(SECRET[::-1]).key_id != key.key_id


@given(st.binary(min_size=32, max_size=80))
def test_repr_and_str_never_show_the_secret(secret: bytes) -> None:
    key = TrialKey(secret)
    shown = repr(key) + str(key) + f"{key}" + repr([key])
    assert key.key_id in shown
    for form in _secret_forms(secret):
        assert form not in shown


def test_secret_field_is_not_in_repr() -> None:
    fields = {f.name: f for f in dataclasses.fields(TrialKey)}
    assert fields["secret"].repr is False


@pytest.mark.parametrize("length", [0, 1, 16, 31])
def test_short_secret_refused(length: int) -> None:
    secret = b"\x07" * length
    with pytest.raises(KeyConfigError, match="at least 32 bytes"):
        TrialKey(secret)


def test_secret_must_be_bytes() -> None:
    with pytest.raises(TypeError):
        TrialKey("x" * 40)  # type: ignore[arg-type]


# --- key text --------------------------------------------------------------------------


def test_new_key_text_round_trips() -> None:
    text = new_key_text()
    assert text.startswith("tik1:")
    assert "=" not in text
    key = parse_key_text(f"  {text}\n")
    assert len(key.secret) == 32
    assert new_key_text() != text


def test_parse_key_text() -> None:
    assert parse_key_text(KEY_TEXT).secret == SECRET
    longer = "tik1:" + base64.urlsafe_b64encode(bytes(48)).rstrip(b"=").decode()
    assert len(parse_key_text(longer).secret) == 48


BAD_TEXTS = {
    "wrong prefix": KEY_TEXT.replace("tik1:", "tik2:"),
    "no prefix": KEY_TEXT[5:],
    "padding": KEY_TEXT + "=",
    "standard alphabet": "tik1:" + base64.b64encode(bytes(range(250, 256)) * 6).decode(),
    "inner space": KEY_TEXT[:20] + " " + KEY_TEXT[20:],
    "too short": "tik1:" + base64.urlsafe_b64encode(SECRET[:31]).rstrip(b"=").decode(),
    "not canonical": KEY_TEXT[:-1] + "N",  # "M" -> "N" sets bits past the last byte
    "impossible length": KEY_TEXT + "AB",
    "empty": "",
}


@pytest.mark.parametrize("name", sorted(BAD_TEXTS))
def test_bad_key_text_refused_without_echo(name: str) -> None:
    text = BAD_TEXTS[name]
    with pytest.raises(KeyConfigError) as info:
        parse_key_text(text)
    _assert_clean(info.value, *_secret_forms(SECRET))
    if text:
        assert text not in str(info.value) + repr(info.value)


# --- providers -------------------------------------------------------------------------


def _key_file(tmp_path: Path, content: str, mode: int = 0o600) -> Path:
    path = tmp_path / "trial.key"
    path.write_text(content)
    path.chmod(mode)
    return path


def test_load_from_env_text() -> None:
    key = load_key("PSEUDONYM", {"TRIAL_PSEUDONYM_KEY": f" {KEY_TEXT}\n"})
    assert key.secret == SECRET
    landing = load_key("LANDING", {"TRIAL_LANDING_KEY": KEY_TEXT, "TRIAL_PSEUDONYM_KEY": "x"})
    assert landing.secret == SECRET


def test_load_from_file(tmp_path: Path) -> None:
    path = _key_file(tmp_path, KEY_TEXT + "\n")
    assert load_key("PSEUDONYM", {"TRIAL_PSEUDONYM_KEY_FILE": str(path)}).secret == SECRET
    link = tmp_path / "link.key"
    link.symlink_to(path)  # e.g. a Kubernetes secret volume's ..data link
    assert load_key("LANDING", {"TRIAL_LANDING_KEY_FILE": str(link)}).secret == SECRET


def test_load_from_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAL_PSEUDONYM_KEY", KEY_TEXT)
    monkeypatch.delenv("TRIAL_PSEUDONYM_KEY_FILE", raising=False)
    settings = Settings.from_env()
    assert load_key("PSEUDONYM", settings.key_variables("PSEUDONYM")).secret == SECRET


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o620, 0o601, 0o660])
def test_file_readable_by_others_refused(tmp_path: Path, mode: int) -> None:
    path = _key_file(tmp_path, KEY_TEXT, mode)
    with pytest.raises(KeyConfigError) as info:
        load_key("PSEUDONYM", {"TRIAL_PSEUDONYM_KEY_FILE": str(path)})
    message = str(info.value)
    assert "TRIAL_PSEUDONYM_KEY_FILE" in message
    assert str(path) in message
    assert "group or others" in message
    _assert_clean(info.value, *_secret_forms(SECRET, KEY_TEXT))


def test_unreadable_or_odd_files_refused(tmp_path: Path) -> None:
    cases = {
        "missing": tmp_path / "missing.key",
        "directory": tmp_path,
        "binary": tmp_path / "binary.key",
        "huge": tmp_path / "huge.key",
    }
    cases["binary"].write_bytes(b"\xff\xfe" + SECRET)
    cases["huge"].write_text(KEY_TEXT + " " * 10_000)
    os.chmod(tmp_path, 0o700)
    for name in ("binary", "huge"):
        cases[name].chmod(0o600)
    for path in cases.values():
        with pytest.raises(KeyConfigError) as info:
            load_key("LANDING", {"TRIAL_LANDING_KEY_FILE": str(path)})
        assert "TRIAL_LANDING_KEY_FILE" in str(info.value)
        _assert_clean(info.value, *_secret_forms(SECRET, KEY_TEXT))


def test_bad_key_in_env_names_the_variable_not_the_text() -> None:
    text = KEY_TEXT[:30]
    with pytest.raises(KeyConfigError) as info:
        load_key("PSEUDONYM", {"TRIAL_PSEUDONYM_KEY": text})
    assert "TRIAL_PSEUDONYM_KEY" in str(info.value)
    _assert_clean(info.value, text, *_secret_forms(SECRET))


def test_no_key_configured() -> None:
    with pytest.raises(KeyConfigError) as info:
        load_key("PSEUDONYM", {"TRIAL_PSEUDONYM_KEY": "  "})
    assert str(info.value).startswith(
        "no pseudonymisation key configured: set TRIAL_PSEUDONYM_KEY or TRIAL_PSEUDONYM_KEY_FILE"
    )
    with pytest.raises(KeyConfigError, match="TRIAL_LANDING_KEY or TRIAL_LANDING_KEY_FILE"):
        load_key("LANDING", {"TRIAL_PSEUDONYM_KEY": KEY_TEXT})


def test_both_sources_set_is_an_error(tmp_path: Path) -> None:
    path = _key_file(tmp_path, KEY_TEXT)
    env = {"TRIAL_PSEUDONYM_KEY": KEY_TEXT, "TRIAL_PSEUDONYM_KEY_FILE": str(path)}
    with pytest.raises(KeyConfigError, match="only one") as info:
        load_key("PSEUDONYM", env)
    _assert_clean(info.value, *_secret_forms(SECRET, KEY_TEXT))


def test_unknown_purpose() -> None:
    with pytest.raises(ValueError, match="PSEUDONYM"):
        load_key("pseudonym", {"TRIAL_pseudonym_KEY": KEY_TEXT})


def test_key_from_aws_secrets_manager(s3_bucket: S3Bucket) -> None:
    """Against moto's server on loopback (the same endpoint serves Secrets Manager)."""
    client = boto3.client("secretsmanager", endpoint_url=s3_bucket.endpoint_url)
    client.create_secret(Name="trial/pseudonym", SecretString=KEY_TEXT)
    env = {"TRIAL_PSEUDONYM_KEY_SECRET_ID": "trial/pseudonym"}
    assert load_key("PSEUDONYM", env).secret == SECRET


def test_missing_aws_secret_is_a_clear_error_without_the_id_value(s3_bucket: S3Bucket) -> None:
    env = {"TRIAL_LANDING_KEY_SECRET_ID": "trial/no-such-secret"}
    with pytest.raises(KeyConfigError, match="ResourceNotFoundException") as caught:
        load_key("LANDING", env)
    assert "TRIAL_LANDING_KEY_SECRET_ID" in str(caught.value)
    assert caught.value.__cause__ is None


def test_aws_secret_that_is_not_a_key_is_refused_without_showing_it(s3_bucket: S3Bucket) -> None:
    client = boto3.client("secretsmanager", endpoint_url=s3_bucket.endpoint_url)
    client.create_secret(Name="trial/bad", SecretString="hunter2-not-a-key")
    with pytest.raises(KeyConfigError) as caught:
        load_key("PSEUDONYM", {"TRIAL_PSEUDONYM_KEY_SECRET_ID": "trial/bad"})
    assert "hunter2" not in str(caught.value)
