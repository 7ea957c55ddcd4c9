"""The LA drop: one inbox per LA, where each LA leaves its files and finds its reports.

The LA is identified by *where* a file was dropped (the drop's access control authenticates it),
never by what the file says. The file's name is chosen by the LA, so it is data: it is kept on
`DropObject.name` only to read and remove the file, and never appears in a repr, a log, an
exception, Dagster metadata or the warehouse. The sensor identifies a file by its keyed
`fingerprint` instead.

This module holds the `Drop` protocol and what its implementations share: the folder drop
(`local`, the embedded default), the S3 drop (`s3`) and the SFTP drop (`sftp`). `open_drop`
(in `opening`) picks one from TRIAL_DROP_URL.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Protocol

from pseudonymise.keys import TrialKey

REPORTS_FOLDER = "reports"
FINGERPRINT_HEX_CHARS = 24
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


def listed_object(key: TrialKey, la_code: str, name: str, size: int, version: str) -> DropObject:
    """The `DropObject` of a listed file, with its fingerprint under `key`."""
    return DropObject(
        la_code=la_code,
        name=name,
        size=size,
        version=version,
        fingerprint=compute_fingerprint(key, la_code, name, size, version),
    )


def changed_message(obj: DropObject) -> str:
    """What `DropObjectChanged` says: the LA and the fingerprint, never the name."""
    return f"file {obj.fingerprint} of LA {obj.la_code} changed after it was listed"


def unusable_name(obj: DropObject) -> DropError:
    """The error for a listed name that cannot address a file in the inbox."""
    return DropError(f"file {obj.fingerprint} of LA {obj.la_code} has an unusable name")
