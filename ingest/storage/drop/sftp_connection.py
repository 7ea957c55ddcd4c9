"""The SFTP drop's connection: configuration, host-key pinning, login, timeouts.

The rules are strict because the drop holds personal data:

- **Key-based login only.** The private key comes from the file named by
  ``TRIAL_SFTP_KEY_FILE`` (no group or other access, like OpenSSH requires); a password in the
  URL is refused, and no agent or ``~/.ssh`` key is ever tried.
- **The server's host key is pinned.** ``TRIAL_SFTP_HOST_KEY`` holds the server's OpenSSH public
  key line(s) (``ssh-ed25519 AAAA…``), or ``TRIAL_SFTP_KNOWN_HOSTS`` names a known_hosts file.
  A server offering any other key is refused: `HostKeyUnknown` when nothing is pinned for the
  host, `HostKeyMismatch` when the pinned key differs; both say which host and which key
  fingerprints (public values, never data). Nothing is ever added to a known_hosts file.
- **Timeouts.** Connecting, the SSH banner, authentication, opening the channel and every SFTP
  request are bounded. Refused, reset or timed-out connections are reported as `Transient`, for
  the drop to retry (`ingest.storage.drop.sftp`); authentication and host-key failures are not
  (retrying cannot fix them, and repeated failed logins can lock the account).

Errors name hosts, users and key fingerprints only, never a path or a paramiko message.
"""

from __future__ import annotations

import base64
import binascii
import os
import posixpath
import stat
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import unquote, urlparse

import paramiko
from paramiko.pkey import UnknownKeyType
from paramiko.ssh_exception import NoValidConnectionsError

from ingest.settings import SFTP_HOST_KEY, SFTP_KEY_FILE, SFTP_KNOWN_HOSTS, SftpSettings
from ingest.storage.drop.base import DropError

SFTP_PORT = 22

# Failures of the network or of a busy server, which a later attempt may not meet.
_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionRefusedError,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    TimeoutError,  # socket.timeout: connect, banner, auth, channel or request timeouts
    EOFError,  # the server closed the connection (e.g. OpenSSH's MaxStartups throttling)
    NoValidConnectionsError,  # connection refused or host unreachable on every address
)


class SftpError(DropError):
    """The SFTP drop cannot be used. Messages name hosts, users and key fingerprints only."""


class SftpConfigError(SftpError):
    """TRIAL_DROP_URL or the TRIAL_SFTP_* variables are missing or unusable."""


class HostKeyRefused(SftpError):
    """The server's host key is not the pinned one: the service refuses to connect."""


class HostKeyUnknown(HostKeyRefused):
    """No host key is pinned for this host and port."""


class HostKeyMismatch(HostKeyRefused):
    """The server offered a host key other than the pinned one."""


class SftpAuthError(SftpError):
    """The server refused the service's key. Never retried."""


class SftpUnavailable(SftpError):
    """The server could not be reached, or kept dropping the connection, after every retry."""


@dataclass(frozen=True)
class SftpTimeouts:
    """Seconds allowed for each stage of a connection, and for each SFTP request after it."""

    connect: float = 10.0
    banner: float = 15.0
    auth: float = 15.0
    channel: float = 15.0
    request: float = 60.0


@dataclass(frozen=True)
class SftpTarget:
    """Where to connect, from TRIAL_DROP_URL: a user on a host and port, and the drop folder."""

    host: str
    port: int
    username: str
    root: str

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """How known_hosts (and paramiko) name this server: `host`, or `[host]:port`."""
        return self.host if self.port == SFTP_PORT else f"[{self.host}]:{self.port}"


HostKeyPins = dict[str, paramiko.PKey]  # key type (e.g. "ssh-ed25519") -> the pinned key


def key_description(key: paramiko.PKey) -> str:
    """`ssh-ed25519 SHA256:…`: a public key's type and OpenSSH fingerprint."""
    return f"{key.get_name()} {key.fingerprint}"


# --- configuration ----------------------------------------------------------------------


def parse_sftp_url(url: str) -> SftpTarget:
    """The target of `sftp://user@host[:port]/path`.

    The path is absolute on the server; an empty path is the login folder. Messages never
    repeat the URL.
    """
    parsed = urlparse(url)
    if parsed.scheme.lower() != "sftp":
        raise SftpConfigError("TRIAL_DROP_URL must be an sftp://user@host:port/path URL")
    if parsed.password is not None:
        raise SftpConfigError(
            "TRIAL_DROP_URL must not hold a password: the SFTP drop logs in with the private "
            f"key named by {SFTP_KEY_FILE} only"
        )
    if not parsed.username or not parsed.hostname:
        raise SftpConfigError("TRIAL_DROP_URL must name the user and host: sftp://user@host/path")
    if parsed.query or parsed.fragment:
        raise SftpConfigError("TRIAL_DROP_URL must not have a query or fragment")
    try:
        port = parsed.port or SFTP_PORT
    except ValueError:
        raise SftpConfigError("TRIAL_DROP_URL has an invalid port") from None
    path = unquote(parsed.path)
    root = posixpath.normpath(path) if path else "."
    if ".." in path.split("/"):
        raise SftpConfigError("TRIAL_DROP_URL must not have '..' in its path")
    return SftpTarget(host=parsed.hostname, port=port, username=unquote(parsed.username), root=root)


def load_user_key(path: str | None) -> paramiko.PKey:
    """The service's private key, from the file named by TRIAL_SFTP_KEY_FILE."""
    if not path:
        raise SftpConfigError(f"the SFTP drop needs {SFTP_KEY_FILE}: the service's private key")
    failure = _unsafe_key_file(path)
    if not failure:
        try:
            return paramiko.PKey.from_path(path)
        except paramiko.PasswordRequiredException:
            failure = "it is protected by a passphrase, which the service does not support"
        except (OSError, ValueError, paramiko.SSHException) as exc:
            failure = f"it is not a private key paramiko can read ({type(exc).__name__})"
    raise SftpConfigError(f"{SFTP_KEY_FILE} names the key file {path}, but {failure}")


def _unsafe_key_file(path: str) -> str:
    """Why the key file must not be used, or '' (the same rule as OpenSSH's)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return f"cannot read it ({type(exc).__name__})"
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file"
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        return (
            f"group or others have access (mode {mode:04o}); make it readable by the service only"
        )
    return ""


def pinned_host_keys(target: SftpTarget, sftp: SftpSettings) -> HostKeyPins:
    """The host keys the server may offer, from exactly one of the two settings.

    Fails closed: with neither set, the service refuses to connect rather than trust whatever
    key the server offers.
    """
    line = sftp.host_key_lines or ""
    known_hosts = sftp.known_hosts_file or ""
    if line and known_hosts:
        raise SftpConfigError(f"both {SFTP_HOST_KEY} and {SFTP_KNOWN_HOSTS} are set: set only one")
    if line:
        return _keys_from_lines(line)
    if known_hosts:
        return _keys_from_known_hosts(known_hosts, target)
    raise SftpConfigError(
        f"the SFTP drop needs the server's host key pinned: set {SFTP_HOST_KEY} to its "
        f"public key line (e.g. from `ssh-keyscan`, checked out of band) or "
        f"{SFTP_KNOWN_HOSTS} to a known_hosts file"
    )


def _keys_from_lines(text: str) -> HostKeyPins:
    """Keys from `type base64 [comment]` lines (several: the old and new key in a rollover)."""
    pins: HostKeyPins = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        key = _public_key(fields[0], fields[1]) if len(fields) >= 2 else None
        if key is None:
            raise SftpConfigError(
                f"{SFTP_HOST_KEY} must hold OpenSSH public key lines, like "
                "'ssh-ed25519 AAAAC3Nza…' (without a host name in front)"
            )
        pins[key.get_name()] = key
    return pins


def _public_key(key_type: str, encoded: str) -> paramiko.PKey | None:
    try:
        blob = base64.b64decode(encoded, validate=True)
        return paramiko.PKey.from_type_string(key_type, blob)
    except (binascii.Error, ValueError, paramiko.SSHException, UnknownKeyType):
        return None


def _keys_from_known_hosts(path: str, target: SftpTarget) -> HostKeyPins:
    try:
        host_keys = paramiko.HostKeys(path)
    except (OSError, paramiko.SSHException) as exc:
        failure = type(exc).__name__
    else:
        entries = host_keys.lookup(target.known_hosts_name)
        return {key_type: entries[key_type] for key_type in entries} if entries else {}
    raise SftpConfigError(f"{SFTP_KNOWN_HOSTS} names {path}, which cannot be read ({failure})")


# --- the connection ---------------------------------------------------------------------


class _RefuseUnknownHostKey(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, with a message that says what to check and pin."""

    def __init__(self, target: SftpTarget) -> None:
        self._target = target

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> NoReturn:
        raise HostKeyUnknown(
            f"the SFTP server at {self._target.address} offered the host key "
            f"{key_description(key)}, but no key is pinned for it: refusing to connect. Check "
            f"the key with the server's administrator and pin it in {SFTP_HOST_KEY} or "
            f"{SFTP_KNOWN_HOSTS}"
        )


class Transient(Exception):
    """A failure worth another attempt; `reason` is an exception class name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_transient(error: BaseException) -> bool:
    """True for network failures, also when paramiko wraps them (e.g. while reading the banner)."""
    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, _TRANSIENT_ERRORS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def transient_reason(error: BaseException) -> str:
    seen: BaseException | None = error
    while seen is not None and not isinstance(seen, _TRANSIENT_ERRORS):
        seen = seen.__cause__ or seen.__context__
    return type(seen or error).__name__


class SftpConnector:
    """Opens authenticated SFTP sessions to one target, with the pinned host keys only."""

    def __init__(
        self,
        target: SftpTarget,
        user_key: paramiko.PKey,
        host_keys: HostKeyPins,
        timeouts: SftpTimeouts,
    ) -> None:
        self.target = target
        self._user_key = user_key
        self._host_keys = dict(host_keys)
        self._timeouts = timeouts

    def connect(self) -> tuple[paramiko.SSHClient, paramiko.SFTPClient]:
        """A logged-in client and its SFTP session; raises `Transient` for retryable failures."""
        client = self._client()
        failure: SftpError | Transient | None = None
        try:
            self._log_in(client)
            sftp = client.open_sftp()
            sftp.get_channel().settimeout(self._timeouts.request)  # type: ignore[union-attr]
            return client, sftp
        except SftpError as exc:  # HostKeyUnknown, from the policy
            failure = exc
        except paramiko.BadHostKeyException as exc:
            failure = self._mismatch(exc)
        except paramiko.AuthenticationException as exc:
            failure = self._refused_login(exc)
        except Exception as exc:
            failure = self._classify(exc)
        client.close()
        raise failure

    def _client(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        pinned = client.get_host_keys()
        for key_type, key in self._host_keys.items():
            pinned.add(self.target.known_hosts_name, key_type, key)
        client.set_missing_host_key_policy(_RefuseUnknownHostKey(self.target))
        return client

    def _log_in(self, client: paramiko.SSHClient) -> None:
        client.connect(
            self.target.host,
            port=self.target.port,
            username=self.target.username,
            pkey=self._user_key,
            look_for_keys=False,
            allow_agent=False,
            timeout=self._timeouts.connect,
            banner_timeout=self._timeouts.banner,
            auth_timeout=self._timeouts.auth,
            channel_timeout=self._timeouts.channel,
        )

    def _mismatch(self, error: paramiko.BadHostKeyException) -> HostKeyMismatch:
        return HostKeyMismatch(
            f"the SFTP server at {self.target.address} offered the host key "
            f"{key_description(error.key)}, but the pinned key is "
            f"{key_description(error.expected_key)}: refusing to connect (the server may be an "
            "impostor; if its key was changed on purpose, check the new key with its "
            f"administrator and update {SFTP_HOST_KEY} or {SFTP_KNOWN_HOSTS})"
        )

    def _refused_login(self, error: paramiko.AuthenticationException) -> SftpAuthError:
        return SftpAuthError(
            f"the SFTP server at {self.target.address} refused the login of user "
            f"{self.target.username!r} with the key in {SFTP_KEY_FILE} "
            f"({key_description(self._user_key)}): {type(error).__name__}; not retried"
        )

    def _classify(self, error: Exception) -> SftpError | Transient:
        if is_transient(error):
            return Transient(transient_reason(error))
        return SftpError(
            f"cannot connect to the SFTP server at {self.target.address}: {type(error).__name__}"
        )
