"""The LA drop: one inbox per LA, where each LA leaves its files and finds its reports.

The LA is identified by *where* a file was dropped (the drop's access control authenticates it),
never by what the file says. The file's name is chosen by the LA, so it is data: it is kept on
`DropObject.name` only to read and remove the file, and never appears in a repr, a log, an
exception, Dagster metadata or the warehouse. The sensor identifies a file by its keyed
`fingerprint` instead.

`LocalFolderDrop` is the embedded default; `open_drop` dispatches on the URL scheme to it or to
the S3 and SFTP drops (`ingest.drop_s3`, `ingest.drop_sftp`), which share this module's types.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from pseudonymise.keys import TrialKey

REPORTS_FOLDER = "reports"
FINGERPRINT_HEX_CHARS = 24
LA_CODE_PATTERN = re.compile(r"[0-9]{3}")
REPORT_FILE_MODE = 0o640  # the LA (the drop's group) reads its own reports

_FINGERPRINT_LABEL = b"trial-ingest drop fingerprint v1"
# Names that are not (yet) a delivered file: hidden files, Office lock files and the partial
# uploads of browsers, WinSCP, rsync and the like.
_IN_PROGRESS_PREFIXES = (".", "~$")
_IN_PROGRESS_SUFFIXES = (".part", ".partial", ".filepart", ".tmp", ".crdownload", ".swp")
_REPORT_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class DropError(RuntimeError):
    """A drop operation failed. Messages name LA codes and fingerprints, never file names."""


class DropObjectChanged(DropError):
    """The file is no longer the version that was listed (re-uploaded, still being written)."""


@dataclass(frozen=True)
class DropObject:
    """One file in an LA's inbox, as listed.

    `name` is the LA's own file name: use it only to address the file on the drop.
    `version` tells two uploads under one name apart (mtime in ns locally, the ETag on S3).
    """

    la_code: str
    name: str = field(repr=False)
    size: int
    version: str
    fingerprint: str = field(compare=False)


class Drop(Protocol):
    """Where LAs deliver files: `<la_code>/<file>` inboxes and `<la_code>/reports/`."""

    def la_codes_present(self) -> list[str]:
        """The LA codes that have an inbox on this drop, sorted."""
        ...

    def list_inbox(self, la_code: str) -> list[DropObject]:
        """The delivered files directly in the LA's inbox (not reports, not partial uploads)."""
        ...

    def read(self, obj: DropObject) -> bytes:
        """The file's bytes; raises `DropObjectChanged` if it is no longer the listed version."""
        ...

    def remove(self, obj: DropObject) -> None:
        """Delete the listed version from the inbox; a newer upload under the name is kept."""
        ...

    def write_report(self, la_code: str, name: str, content: bytes) -> None:
        """Write a report (named by the service, never after the LA's file) to `reports/`."""
        ...

    def fingerprint(self, obj: DropObject) -> str:
        """The opaque keyed identifier of `obj`'s LA, name, size and version."""
        ...

    def close(self) -> None:
        """Release the connection, if the drop holds one (SFTP); a no-op for folder and S3.

        Whoever opens a drop closes it (`with contextlib.closing(drop):` or try/finally).
        """
        ...


def compute_fingerprint(key: TrialKey, la_code: str, name: str, size: int, version: str) -> str:
    """Keyed HMAC-SHA-256 of `la_code|name|size|version`, as 24 hex characters.

    Keyed, because a plain hash of a short file name could be reversed by guessing. The key is
    derived from the trial key under a fixed label, so the fingerprint can never equal a token
    or anything else computed under the same key. The message is unambiguous although names may
    contain '|': the LA code has a fixed form and size and version contain no '|'.
    """
    subkey = hmac.new(key.secret, _FINGERPRINT_LABEL, hashlib.sha256).digest()
    message = f"{la_code}|{name}|{size}|{version}".encode("utf-8", "surrogateescape")
    return hmac.new(subkey, message, hashlib.sha256).hexdigest()[:FINGERPRINT_HEX_CHARS]


def check_la_code(la_code: str) -> str:
    """`la_code` if it is a three-digit LA code (it becomes part of paths)."""
    if not LA_CODE_PATTERN.fullmatch(la_code):
        raise ValueError("an LA code must be three digits")
    return la_code


def is_delivered_file_name(name: str) -> bool:
    """False for hidden files, Office lock files and partial uploads."""
    lowered = name.lower()
    return not (
        lowered.startswith(_IN_PROGRESS_PREFIXES) or lowered.endswith(_IN_PROGRESS_SUFFIXES)
    )


def check_report_name(name: str) -> str:
    """`name` if it is a plain file name (reports are named by the service, never by an LA)."""
    if not _REPORT_NAME_PATTERN.fullmatch(name) or ".." in name:
        raise ValueError("a report name must be a plain file name chosen by the service")
    return name


class LocalFolderDrop:
    """A drop on a local (or mounted) folder: `root/<la_code>/<file>`."""

    def __init__(self, root: Path, fingerprint_key: TrialKey) -> None:
        if not root.is_dir():
            raise DropError(f"the drop folder {root} does not exist or is not a folder")
        self._root = root
        self._key = fingerprint_key

    def __repr__(self) -> str:
        return f"LocalFolderDrop({str(self._root)!r})"

    @property
    def root(self) -> Path:
        return self._root

    def close(self) -> None:
        """Nothing to release: a folder holds no connection."""

    def fingerprint(self, obj: DropObject) -> str:
        return compute_fingerprint(self._key, obj.la_code, obj.name, obj.size, obj.version)

    def la_codes_present(self) -> list[str]:
        """Folders named as LA codes; anything else at the top of the drop is ignored."""
        return sorted(
            entry.name
            for entry in os.scandir(self._root)
            if LA_CODE_PATTERN.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)
        )

    def list_inbox(self, la_code: str) -> list[DropObject]:
        inbox = self._inbox(la_code)
        if not inbox.is_dir():
            return []
        objects = []
        for entry in os.scandir(inbox):
            # Symbolic links are skipped: a link could point outside the LA's own folder.
            if not is_delivered_file_name(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            info = entry.stat(follow_symlinks=False)
            objects.append(self._object(la_code, entry.name, info))
        return sorted(objects, key=lambda obj: obj.fingerprint)

    def read(self, obj: DropObject) -> bytes:
        content: bytes | None = None
        failure = ""
        try:
            # O_NOFOLLOW: a file swapped for a link since listing is not followed out of the inbox.
            fd = os.open(self._path(obj), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as handle:
                if self._version_of(os.fstat(handle.fileno())) == (obj.size, obj.version):
                    content = handle.read()
        except OSError as exc:
            # Raised below, outside this block: the OS error's message holds the path, which
            # holds the LA's file name, so it must not become the new error's context.
            failure = type(exc).__name__
        if failure:
            raise DropError(f"cannot read file {obj.fingerprint} of LA {obj.la_code}: {failure}")
        if content is None or len(content) != obj.size:
            raise DropObjectChanged(
                f"file {obj.fingerprint} of LA {obj.la_code} changed after it was listed"
            )
        return content

    def remove(self, obj: DropObject) -> None:
        path = self._path(obj)
        try:
            info = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return
        except OSError as exc:
            failure = type(exc).__name__
        else:
            if self._version_of(info) != (obj.size, obj.version):
                return  # a newer upload under the same name: it is a new object, keep it
            failure = self._unlink(path)
        if failure:
            raise DropError(f"cannot remove file {obj.fingerprint} of LA {obj.la_code}: {failure}")

    def write_report(self, la_code: str, name: str, content: bytes) -> None:
        folder = self._inbox(la_code) / REPORTS_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / check_report_name(name)
        handle, temp_name = tempfile.mkstemp(dir=folder, prefix=".report-", suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp_name, REPORT_FILE_MODE)
            os.replace(temp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise

    def _inbox(self, la_code: str) -> Path:
        return self._root / check_la_code(la_code)

    def _path(self, obj: DropObject) -> Path:
        if "/" in obj.name or "\\" in obj.name or obj.name in ("", ".", ".."):
            raise DropError(f"file {obj.fingerprint} of LA {obj.la_code} has an unusable name")
        return self._inbox(obj.la_code) / obj.name

    def _object(self, la_code: str, name: str, info: os.stat_result) -> DropObject:
        size, version = self._version_of(info)
        return DropObject(
            la_code=la_code,
            name=name,
            size=size,
            version=version,
            fingerprint=compute_fingerprint(self._key, la_code, name, size, version),
        )

    @staticmethod
    def _version_of(info: os.stat_result) -> tuple[int, str]:
        if not stat.S_ISREG(info.st_mode):
            return (-1, "")
        return (info.st_size, str(info.st_mtime_ns))

    @staticmethod
    def _unlink(path: Path) -> str:
        try:
            path.unlink()
        except FileNotFoundError:
            return ""
        except OSError as exc:
            return type(exc).__name__
        return ""


def open_drop(url: str, fingerprint_key: TrialKey) -> Drop:
    """The drop named by TRIAL_DROP_URL: a folder path, `file://`, `s3://` or `sftp://` URL.

    The S3 and SFTP drops are imported only when named, so the local default needs neither
    boto3 nor paramiko. Error messages name the scheme only: a URL may carry a password.
    """
    scheme = urlparse(url).scheme.lower() if "://" in url else ""
    if scheme == "":
        return LocalFolderDrop(Path(url).expanduser(), fingerprint_key)
    if scheme == "file":
        return LocalFolderDrop(_file_url_path(url), fingerprint_key)
    if scheme == "s3":
        from ingest.drop_s3 import open_s3_drop

        return open_s3_drop(url, fingerprint_key)
    if scheme == "sftp":
        from ingest.drop_sftp import open_sftp_drop

        return open_sftp_drop(url, fingerprint_key)
    raise ValueError(f"TRIAL_DROP_URL has an unsupported scheme {scheme!r}: use a folder path")


def _file_url_path(url: str) -> Path:
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise ValueError("a file:// URL must name a local path (file:///path)")
    return Path(unquote(parsed.path))
