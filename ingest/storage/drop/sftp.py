"""The SFTP drop: `TRIAL_DROP_URL=sftp://user@host:port/path`, one inbox per LA at
`<path>/<la_code>/`, through paramiko.

Same protocol as the folder drop (`ingest.storage.drop.local`). What SFTP adds is the
connection, opened (with the pinned host key and the service's key only, see
`ingest.storage.drop.sftp_connection`) on first use and reused by the same `SftpDrop` until
`close()`. Refused, reset or timed-out connections are retried with exponential backoff, then
`SftpUnavailable`.

File names are data: no path, no name and no paramiko message (which can quote a path) leaves
this module; errors name the LA, the file's fingerprint and the kind of failure only. paramiko
logs every SFTP path at DEBUG, so that logger is kept at INFO unless someone sets it explicitly.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import secrets
import stat
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

import paramiko

from ingest.settings import SftpSettings
from ingest.storage.drop.base import (
    REPORT_FILE_MODE,
    REPORTS_FOLDER,
    DropError,
    DropObject,
    DropObjectChanged,
    changed_message,
    check_report_name,
    compute_fingerprint,
    is_delivered_file_name,
    listed_object,
    unusable_name,
)
from ingest.storage.drop.sftp_connection import (
    SftpConnector,
    SftpTimeouts,
    SftpUnavailable,
    Transient,
    is_transient,
    load_user_key,
    parse_sftp_url,
    pinned_host_keys,
    transient_reason,
)
from pseudonymise.keys import TrialKey
from pseudonymise.la_code import check_la_code, is_la_code

T = TypeVar("T")

_PATH_LOGGER = "paramiko.transport.sftp"  # logs "open('/901/<file name>', 'rb')" at DEBUG


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


def quieten_path_logging() -> None:
    """Keep paramiko's DEBUG records, which quote SFTP paths, out of the logs (unless set)."""
    logger = logging.getLogger(_PATH_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


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
                if stat.S_ISDIR(entry.st_mode or 0) and is_la_code(entry.filename)
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
                    raise DropObjectChanged(changed_message(obj))
                handle.prefetch(obj.size)
                content = handle.read()
                after = _version_of(handle.stat())
            if len(content) != obj.size or after != listed:
                raise DropObjectChanged(changed_message(obj))
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
                if not isinstance(outcome, Transient):
                    return outcome
                reason = outcome.reason
                self.close()
        raise SftpUnavailable(
            f"cannot {what}: the SFTP server at {self._connector.target.address} failed "
            f"{self._retry.attempts} attempts (last: {reason})"
        )

    def _attempt(self, what: str, operation: Callable[[paramiko.SFTPClient], T]) -> T | Transient:
        try:
            sftp = self._session()
        except Transient as transient:
            return transient
        failure = ""
        try:
            return operation(sftp)
        except DropError:
            raise
        except Exception as exc:
            if is_transient(exc) or not self._connected():
                return Transient(transient_reason(exc))
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
            raise unusable_name(obj)
        return posixpath.join(self._inbox(obj.la_code), obj.name)

    def _object(self, la_code: str, name: str, attributes: paramiko.SFTPAttributes) -> DropObject:
        size, version = _version_of(attributes)
        return listed_object(self._key, la_code, name, size, version)


def _version_of(attributes: paramiko.SFTPAttributes) -> tuple[int, str]:
    """(size, mtime in whole seconds, which is all SFTP v3 gives), or (-1, '') if not a file."""
    if not stat.S_ISREG(attributes.st_mode or 0) or attributes.st_size is None:
        return (-1, "")
    return (attributes.st_size, str(attributes.st_mtime))


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
    sftp: SftpSettings,
    *,
    timeouts: SftpTimeouts | None = None,
    retry: RetryPolicy | None = None,
) -> SftpDrop:
    """The drop named by `TRIAL_DROP_URL=sftp://…` (for `open_drop`).

    Reads the key and the pinned host keys now, so a misconfiguration stops the service at
    start-up; connects on first use.
    """
    target = parse_sftp_url(url)
    connector = SftpConnector(
        target,
        load_user_key(sftp.key_file),
        pinned_host_keys(target, sftp),
        timeouts or SftpTimeouts(),
    )
    return SftpDrop(connector, fingerprint_key, retry=retry)
