"""Trial keys: the secret behind every token and the landing-store encryption, and where
each comes from.

The spec requires the key to come from outside the code and the warehouse and never to be
logged, displayed or stored. So a `TrialKey` never shows its secret (repr, str, errors), and
every error here names environment variables, paths and reasons, never key material.

Key text (what ``trial-ingest keygen`` prints and every provider holds)::

    tik1:<base64url of at least 32 random bytes, no padding>

Providers are tried by environment variable, one purpose at a time (``PSEUDONYM`` for tokens,
``LANDING`` for raw files at rest, which the spec requires to be a different key):

- ``TRIAL_<PURPOSE>_KEY``: the key text itself;
- ``TRIAL_<PURPOSE>_KEY_FILE``: a path to a file holding the key text, which only the service
  may read (no group or other permission bits, e.g. ``chmod 600``; a Kubernetes secret volume
  needs ``defaultMode: 0400``);
- ``TRIAL_<PURPOSE>_KEY_SECRET_ID``: the id or ARN of an AWS Secrets Manager secret whose text
  is the key text.

Exactly one must be set. Another secret store is one more `KeyProvider` in `KEY_PROVIDERS`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

KEY_TEXT_PREFIX = "tik1:"
MIN_SECRET_BYTES = 32
PURPOSES = ("PSEUDONYM", "LANDING")

_KEY_ID_LABEL = b"trial-ingest key id"
_BASE64URL_RE = re.compile(r"[A-Za-z0-9_-]+")
_MAX_KEY_FILE_BYTES = 4096
_PURPOSE_NAMES = {"PSEUDONYM": "pseudonymisation", "LANDING": "landing-store"}


class KeyConfigError(RuntimeError):
    """A key is missing, malformed or unsafely stored. Never carries key material."""


@dataclass(frozen=True)
class TrialKey:
    """A secret of at least 32 bytes and its public identifier.

    `key_id` is recorded on every stored row so that a key can be rotated by reprocessing; it
    is an HMAC of a fixed label, so it reveals nothing about the secret.
    """

    secret: bytes = field(repr=False)
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes):
            raise TypeError("a trial key secret must be bytes")
        if len(self.secret) < MIN_SECRET_BYTES:
            raise KeyConfigError(
                f"a trial key must be at least {MIN_SECRET_BYTES} bytes of random data"
            )
        digest = hmac.new(self.secret, _KEY_ID_LABEL, hashlib.sha256).hexdigest()
        object.__setattr__(self, "key_id", "k1-" + digest[:16])


def new_key_text() -> str:
    """Fresh key text from the operating system's random source (what ``keygen`` prints)."""
    encoded = base64.urlsafe_b64encode(secrets.token_bytes(MIN_SECRET_BYTES))
    return KEY_TEXT_PREFIX + encoded.rstrip(b"=").decode("ascii")


def _decode_key_text(text: str) -> bytes | str:
    """The secret in key text, or the reason it is not valid key text (never the text)."""
    text = text.strip()
    if not text.startswith(KEY_TEXT_PREFIX):
        return f"key text must start with {KEY_TEXT_PREFIX!r}"
    body = text[len(KEY_TEXT_PREFIX) :]
    if not _BASE64URL_RE.fullmatch(body) or len(body) % 4 == 1:
        return "key text is not unpadded base64url"
    try:
        secret = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        secret = b""
    if base64.urlsafe_b64encode(secret).rstrip(b"=").decode("ascii") != body:
        return "key text is not canonical unpadded base64url"
    if len(secret) < MIN_SECRET_BYTES:
        return f"key text holds fewer than {MIN_SECRET_BYTES} bytes"
    return secret


def parse_key_text(text: str) -> TrialKey:
    """A `TrialKey` from key text; surrounding white space is ignored."""
    decoded = _decode_key_text(text)
    if isinstance(decoded, str):
        raise KeyConfigError(decoded)
    return TrialKey(decoded)


# --- providers -------------------------------------------------------------------------

KeyReader = Callable[[str, str], str]
"""Reads key text given (environment variable name, its value); raises KeyConfigError."""


@dataclass(frozen=True)
class KeyProvider:
    """One place a key can come from, chosen by the environment variable that names it."""

    env_suffix: str  # appended to TRIAL_<PURPOSE>_KEY
    read: KeyReader


def _read_env_text(_variable: str, value: str) -> str:
    """The key text is the variable's value."""
    return value


def _read_key_file(variable: str, path: str) -> str:
    """Key text from a file that only this service's user can access.

    The checks use the opened file (fstat), so the file checked is the file read; O_NONBLOCK
    keeps a FIFO at that path from hanging start-up.
    """
    failure: str | None = None
    text = ""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        failure = f"cannot open it ({type(exc).__name__})"
    else:
        try:
            failure, text = _check_and_read(fd)
        finally:
            os.close(fd)
    if failure is not None:
        raise KeyConfigError(f"{variable} names the key file {path}, but {failure}")
    return text


def _check_and_read(fd: int) -> tuple[str | None, str]:
    """(reason to refuse, or None; the file's text) for an open key file."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file", ""
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        return (
            f"group or others have access (mode {mode:04o}); make it readable by the service"
            " only, e.g. chmod 600",
            "",
        )
    raw = b""
    while len(raw) <= _MAX_KEY_FILE_BYTES and (chunk := os.read(fd, 1024)):
        raw += chunk
    return None, _decode_file_bytes(raw)


def _decode_file_bytes(raw: bytes) -> str:
    """File content as text; anything that cannot be key text becomes '' (then refused)."""
    if len(raw) > _MAX_KEY_FILE_BYTES:
        return ""
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return ""


def _read_aws_secret(variable: str, secret_id: str) -> str:
    """Key text from AWS Secrets Manager (region, credentials and endpoint from the standard
    AWS environment). Only the error's code is reported: the service's message never holds
    the secret, and botocore's own messages are not passed on."""
    import boto3  # here, not at import: boto3 costs start-up time the other providers need not
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise KeyConfigError(f"{variable} names a secret that could not be read ({code})") from None
    except BotoCoreError as exc:
        reason = type(exc).__name__
        raise KeyConfigError(
            f"{variable}: AWS Secrets Manager was not reachable ({reason})"
        ) from None
    text = response.get("SecretString")
    if not isinstance(text, str):
        raise KeyConfigError(f"{variable} names a secret with no text value (SecretString)")
    return text


KEY_PROVIDERS: tuple[KeyProvider, ...] = (
    KeyProvider("", _read_env_text),
    KeyProvider("_FILE", _read_key_file),
    KeyProvider("_SECRET_ID", _read_aws_secret),
)


def _variable(purpose: str, provider: KeyProvider) -> str:
    return f"TRIAL_{purpose}_KEY{provider.env_suffix}"


def load_key(
    purpose: str,
    env: Mapping[str, str],
    *,
    providers: tuple[KeyProvider, ...] = KEY_PROVIDERS,
) -> TrialKey:
    """The key for `purpose` (``"PSEUDONYM"`` or ``"LANDING"``) from exactly one provider.

    Refusing to guess (none set, or two set) keeps a stale or test key from being used by
    accident; the service refuses to start rather than tokenise under the wrong key.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"key purpose must be one of {', '.join(PURPOSES)}")
    chosen = [p for p in providers if env.get(_variable(purpose, p), "").strip()]
    names = [_variable(purpose, p) for p in providers]
    if not chosen:
        raise KeyConfigError(
            f"no {_PURPOSE_NAMES[purpose]} key configured: set {' or '.join(names)}"
            " (generate one with `trial-ingest keygen`)"
        )
    if len(chosen) > 1:
        set_names = ", ".join(_variable(purpose, p) for p in chosen)
        raise KeyConfigError(f"more than one key source is set ({set_names}): set only one")
    provider = chosen[0]
    variable = _variable(purpose, provider)
    decoded = _decode_key_text(provider.read(variable, env[variable].strip()))
    if isinstance(decoded, str):
        raise KeyConfigError(f"{variable} does not give a valid key: {decoded}")
    return TrialKey(decoded)
