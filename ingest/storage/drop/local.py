"""The folder drop, the embedded default: `root/<la_code>/<file>` on a local or mounted folder."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

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
from pseudonymise.keys import TrialKey
from pseudonymise.la_code import check_la_code, is_la_code


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
            if is_la_code(entry.name) and entry.is_dir(follow_symlinks=False)
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
            raise DropObjectChanged(changed_message(obj))
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
            raise unusable_name(obj)
        return self._inbox(obj.la_code) / obj.name

    def _object(self, la_code: str, name: str, info: os.stat_result) -> DropObject:
        size, version = self._version_of(info)
        return listed_object(self._key, la_code, name, size, version)

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
