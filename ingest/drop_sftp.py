"""The SFTP drop: `TRIAL_DROP_URL=sftp://user@host:port/path`, one inbox per LA at
`<path>/<la_code>/`, through paramiko.

Same protocol as `ingest.drop.LocalFolderDrop`. What SFTP adds is the connection, and the rules
for it are strict because the drop holds personal data:

- **Key-based login only.** The private key comes from the file named by
  ``TRIAL_SFTP_KEY_FILE`` (no group or other access, like OpenSSH requires); a password in the
  URL is refused, and no agent or ``~/.ssh`` key is ever tried.
- **The server's host key is pinned.** ``TRIAL_SFTP_HOST_KEY`` holds the server's OpenSSH public
  key line(s) (``ssh-ed25519 AAAA…``), or ``TRIAL_SFTP_KNOWN_HOSTS`` names a known_hosts file.
  A server offering any other key is refused: `HostKeyUnknown` when nothing is pinned for the
  host, `HostKeyMismatch` when the pinned key differs; both say which host and which key
  fingerprints (public values, never data). Nothing is ever added to a known_hosts file.
- **Timeouts and retries.** Connecting, the SSH banner, authentication, opening the channel and
  every SFTP request are bounded. Refused, reset or timed-out connections are retried with
  exponential backoff, then `SftpUnavailable`; authentication and host-key failures are never
  retried (retrying cannot fix them, and repeated failed logins can lock the account).

The connection is opened on first use and reused by the same `SftpDrop` until `close()`.

File names are data: no path, no name and no paramiko message (which can quote a path) leaves
this module; errors name the LA, the file's fingerprint and the kind of failure only. paramiko
logs every SFTP path at DEBUG, so that logger is kept at INFO unless someone sets it explicitly.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import posixpath
import secrets
import stat
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import NoReturn, TypeVar
from urllib.parse import unquote, urlparse

import paramiko
from paramiko.pkey import UnknownKeyType
from paramiko.ssh_exception import NoValidConnectionsError

from ingest.drop import (
    LA_CODE_PATTERN,
    REPORT_FILE_MODE,
    REPORTS_FOLDER,
    DropError,
    DropObject,
    DropObjectChanged,
    check_la_code,
    check_report_name,
    compute_fingerprint,
    is_delivered_file_name,
)
from pseudonymise.keys import TrialKey

T = TypeVar("T")

KEY_FILE_VARIABLE = "TRIAL_SFTP_KEY_FILE"
HOST_KEY_VARIABLE = "TRIAL_SFTP_HOST_KEY"
KNOWN_HOSTS_VARIABLE = "TRIAL_SFTP_KNOWN_HOSTS"
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
_PATH_LOGGER = "paramiko.transport.sftp"  # logs "open('/901/<file name>', 'rb')" at DEBUG


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
class RetryPolicy:
    """`attempts` tries in all, waiting first_delay, first_delay * factor, … (at most max_delay)."""

    attempts: int = 4
    first_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 10.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")

    def delay_before(self, attempt: int) -> float:
        """The wait before attempt number `attempt` (2, 3, …)."""
        return float(min(self.first_delay * self.factor ** (attempt - 2), self.max_delay))


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


def quieten_path_logging() -> None:
    """Keep paramiko's DEBUG records, which quote SFTP paths, out of the logs (unless set)."""
    logger = logging.getLogger(_PATH_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


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
            f"key named by {KEY_FILE_VARIABLE} only"
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


def load_user_key(env: Mapping[str, str]) -> paramiko.PKey:
    """The service's private key, from the file named by TRIAL_SFTP_KEY_FILE."""
    path = env.get(KEY_FILE_VARIABLE, "").strip()
    if not path:
        raise SftpConfigError(f"the SFTP drop needs {KEY_FILE_VARIABLE}: the service's private key")
    failure = _unsafe_key_file(path)
    if not failure:
        try:
            return paramiko.PKey.from_path(path)
        except paramiko.PasswordRequiredException:
            failure = "it is protected by a passphrase, which the service does not support"
        except (OSError, ValueError, paramiko.SSHException) as exc:
            failure = f"it is not a private key paramiko can read ({type(exc).__name__})"
    raise SftpConfigError(f"{KEY_FILE_VARIABLE} names the key file {path}, but {failure}")


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


def pinned_host_keys(target: SftpTarget, env: Mapping[str, str]) -> HostKeyPins:
    """The host keys the server may offer, from exactly one of the two variables.

    Fails closed: with neither set, the service refuses to connect rather than trust whatever
    key the server offers.
    """
    line = env.get(HOST_KEY_VARIABLE, "").strip()
    known_hosts = env.get(KNOWN_HOSTS_VARIABLE, "").strip()
    if line and known_hosts:
        raise SftpConfigError(
            f"both {HOST_KEY_VARIABLE} and {KNOWN_HOSTS_VARIABLE} are set: set only one"
        )
    if line:
        return _keys_from_lines(line)
    if known_hosts:
        return _keys_from_known_hosts(known_hosts, target)
    raise SftpConfigError(
        f"the SFTP drop needs the server's host key pinned: set {HOST_KEY_VARIABLE} to its "
        f"public key line (e.g. from `ssh-keyscan`, checked out of band) or "
        f"{KNOWN_HOSTS_VARIABLE} to a known_hosts file"
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
                f"{HOST_KEY_VARIABLE} must hold OpenSSH public key lines, like "
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
    raise SftpConfigError(f"{KNOWN_HOSTS_VARIABLE} names {path}, which cannot be read ({failure})")


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
            f"the key with the server's administrator and pin it in {HOST_KEY_VARIABLE} or "
            f"{KNOWN_HOSTS_VARIABLE}"
        )


class _Transient(Exception):
    """A failure worth another attempt; `reason` is an exception class name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _is_transient(error: BaseException) -> bool:
    """True for network failures, also when paramiko wraps them (e.g. while reading the banner)."""
    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, _TRANSIENT_ERRORS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _transient_reason(error: BaseException) -> str:
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
        """A logged-in client and its SFTP session; raises `_Transient` for retryable failures."""
        client = self._client()
        failure: SftpError | _Transient | None = None
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
            f"administrator and update {HOST_KEY_VARIABLE} or {KNOWN_HOSTS_VARIABLE})"
        )

    def _refused_login(self, error: paramiko.AuthenticationException) -> SftpAuthError:
        return SftpAuthError(
            f"the SFTP server at {self.target.address} refused the login of user "
            f"{self.target.username!r} with the key in {KEY_FILE_VARIABLE} "
            f"({key_description(self._user_key)}): {type(error).__name__}; not retried"
        )

    def _classify(self, error: Exception) -> SftpError | _Transient:
        if _is_transient(error):
            return _Transient(_transient_reason(error))
        return SftpError(
            f"cannot connect to the SFTP server at {self.target.address}: {type(error).__name__}"
        )


# --- the drop ---------------------------------------------------------------------------


class SftpDrop:
    """A drop on an SFTP server: `<root>/<la_code>/<file>`, one lazily opened connection."""

    def __init__(
        self,
        connector: SftpConnector,
        fingerprint_key: TrialKey,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        quieten_path_logging()
        self._connector = connector
        self._root = connector.target.root
        self._key = fingerprint_key
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._lock = threading.RLock()
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._closer: weakref.finalize[[], SftpDrop] | None = None

    def __repr__(self) -> str:
        return f"SftpDrop({self._connector.target.address!r})"

    def __enter__(self) -> SftpDrop:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection, if one is open (the next call opens a new one).

        A drop that is dropped without `close()` closes its connection when it is collected.
        """
        with self._lock:
            closer, self._closer = self._closer, None
            self._client, self._sftp = None, None
            if closer is not None:
                closer()

    def fingerprint(self, obj: DropObject) -> str:
        return compute_fingerprint(self._key, obj.la_code, obj.name, obj.size, obj.version)

    def la_codes_present(self) -> list[str]:
        """Folders named as LA codes directly in the drop folder; anything else is ignored."""

        def list_codes(sftp: paramiko.SFTPClient) -> list[str]:
            return sorted(
                entry.filename
                for entry in sftp.listdir_attr(self._root)
                if stat.S_ISDIR(entry.st_mode or 0) and LA_CODE_PATTERN.fullmatch(entry.filename)
            )

        return self._run("list the LA folders of the SFTP drop", list_codes)

    def list_inbox(self, la_code: str) -> list[DropObject]:
        inbox = self._inbox(la_code)

        def list_files(sftp: paramiko.SFTPClient) -> list[DropObject]:
            try:
                entries = sftp.listdir_attr(inbox)
            except FileNotFoundError:
                return []
            # Only regular files: symbolic links (which could point elsewhere) are skipped.
            return [
                self._object(la_code, entry.filename, entry)
                for entry in entries
                if stat.S_ISREG(entry.st_mode or 0) and is_delivered_file_name(entry.filename)
            ]

        objects = self._run(f"list LA {la_code}'s inbox on the SFTP drop", list_files)
        return sorted(objects, key=lambda obj: obj.fingerprint)

    def read(self, obj: DropObject) -> bytes:
        """The file's bytes, if its size and mtime are still the listed ones before and after."""
        path = self._path(obj)
        listed = (obj.size, obj.version)

        def read_listed_version(sftp: paramiko.SFTPClient) -> bytes:
            with sftp.open(path, "rb") as handle:
                if _version_of(handle.stat()) != listed:
                    raise DropObjectChanged(_changed_message(obj))
                handle.prefetch(obj.size)
                content = handle.read()
                after = _version_of(handle.stat())
            if len(content) != obj.size or after != listed:
                raise DropObjectChanged(_changed_message(obj))
            return content

        return self._run(f"read file {obj.fingerprint} of LA {obj.la_code}", read_listed_version)

    def remove(self, obj: DropObject) -> None:
        """Delete the file if its size and mtime are still the listed ones.

        SFTP has no conditional delete: a replacement written in the moment between the stat
        and the remove would be lost (a new upload normally arrives under a temporary name and
        is renamed, or keeps changing its mtime while it is written, which the stat sees).
        """
        path = self._path(obj)

        def remove_if_unchanged(sftp: paramiko.SFTPClient) -> None:
            try:
                if _version_of(sftp.lstat(path)) == (obj.size, obj.version):
                    sftp.remove(path)
            except FileNotFoundError:
                pass  # gone already

        self._run(f"remove file {obj.fingerprint} of LA {obj.la_code}", remove_if_unchanged)

    def write_report(self, la_code: str, name: str, content: bytes) -> None:
        """Written under a hidden temporary name, then renamed: never seen half-written."""
        inbox = self._inbox(la_code)
        folder = posixpath.join(inbox, REPORTS_FOLDER)
        target = posixpath.join(folder, check_report_name(name))

        def write(sftp: paramiko.SFTPClient) -> None:
            _make_folder(sftp, inbox)
            _make_folder(sftp, folder)
            temp = posixpath.join(folder, f".report-{secrets.token_hex(8)}.part")
            try:
                with sftp.open(temp, "wb") as out:
                    out.write(content)
                sftp.chmod(temp, REPORT_FILE_MODE)
                _replace(sftp, temp, target)
            except BaseException:
                with contextlib.suppress(Exception):
                    sftp.remove(temp)
                raise

        self._run(f"write a report to LA {la_code}'s SFTP drop", write)

    # --- connection handling -------------------------------------------------------------

    def _run(self, what: str, operation: Callable[[paramiko.SFTPClient], T]) -> T:
        """`operation` on the open session, reconnecting and retrying on transient failures.

        Errors are raised outside the handlers, so no paramiko exception (whose text may quote
        a path) is chained to them.
        """
        with self._lock:
            reason = ""
            for attempt in range(1, self._retry.attempts + 1):
                if attempt > 1:
                    self._sleep(self._retry.delay_before(attempt))
                outcome = self._attempt(what, operation)
                if not isinstance(outcome, _Transient):
                    return outcome
                reason = outcome.reason
                self.close()
        raise SftpUnavailable(
            f"cannot {what}: the SFTP server at {self._connector.target.address} failed "
            f"{self._retry.attempts} attempts (last: {reason})"
        )

    def _attempt(self, what: str, operation: Callable[[paramiko.SFTPClient], T]) -> T | _Transient:
        try:
            sftp = self._session()
        except _Transient as transient:
            return transient
        failure = ""
        try:
            return operation(sftp)
        except DropError:
            raise
        except Exception as exc:
            if _is_transient(exc) or not self._connected():
                return _Transient(_transient_reason(exc))
            failure = type(exc).__name__
        raise DropError(f"cannot {what}: {failure}")

    def _session(self) -> paramiko.SFTPClient:
        if self._sftp is None or not self._connected():
            self.close()
            self._client, self._sftp = self._connector.connect()
            self._closer = weakref.finalize(self, self._client.close)
        return self._sftp

    def _connected(self) -> bool:
        transport = self._client.get_transport() if self._client is not None else None
        return transport is not None and transport.is_active()

    # --- names ---------------------------------------------------------------------------

    def _inbox(self, la_code: str) -> str:
        return posixpath.join(self._root, check_la_code(la_code))

    def _path(self, obj: DropObject) -> str:
        if "/" in obj.name or obj.name in ("", ".", ".."):
            raise DropError(f"file {obj.fingerprint} of LA {obj.la_code} has an unusable name")
        return posixpath.join(self._inbox(obj.la_code), obj.name)

    def _object(self, la_code: str, name: str, attributes: paramiko.SFTPAttributes) -> DropObject:
        size, version = _version_of(attributes)
        return DropObject(
            la_code=la_code,
            name=name,
            size=size,
            version=version,
            fingerprint=compute_fingerprint(self._key, la_code, name, size, version),
        )


def _version_of(attributes: paramiko.SFTPAttributes) -> tuple[int, str]:
    """(size, mtime in whole seconds, which is all SFTP v3 gives), or (-1, '') if not a file."""
    if not stat.S_ISREG(attributes.st_mode or 0) or attributes.st_size is None:
        return (-1, "")
    return (attributes.st_size, str(attributes.st_mtime))


def _changed_message(obj: DropObject) -> str:
    return f"file {obj.fingerprint} of LA {obj.la_code} changed after it was listed"


def _make_folder(sftp: paramiko.SFTPClient, path: str) -> None:
    try:
        sftp.stat(path)
    except FileNotFoundError:
        sftp.mkdir(path)


def _replace(sftp: paramiko.SFTPClient, source: str, target: str) -> None:
    """Atomic rename over `target`; servers without the posix-rename extension get two steps."""
    try:
        sftp.posix_rename(source, target)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            sftp.remove(target)
        sftp.rename(source, target)


def open_sftp_drop(
    url: str,
    fingerprint_key: TrialKey,
    env: Mapping[str, str] | None = None,
    *,
    timeouts: SftpTimeouts | None = None,
    retry: RetryPolicy | None = None,
) -> SftpDrop:
    """The drop named by `TRIAL_DROP_URL=sftp://…` (for `ingest.drop.open_drop`).

    Reads the key and the pinned host keys now, so a misconfiguration stops the service at
    start-up; connects on first use.
    """
    env = os.environ if env is None else env
    target = parse_sftp_url(url)
    connector = SftpConnector(
        target, load_user_key(env), pinned_host_keys(target, env), timeouts or SftpTimeouts()
    )
    return SftpDrop(connector, fingerprint_key, retry=retry)
