"""The landing store: raw LA files, encrypted at rest, kept for the retention period.

A file is copied off the drop into the landing store before anything else happens, so that it
can be reprocessed (after a key rotation or a schema fix) until retention deletes it. Each
submission is two files under `root/<la_code>/`:

- `<submission_id>.bin`: `encrypt_blob(landing key, content, "<la_code>/<submission_id>")`, so a
  blob renamed or moved to another LA fails to decrypt;
- `<submission_id>.json`: the sidecar (SHA-256 and size of the content, received time in UTC,
  key id). Never the LA's file name.

Both are written to a temporary file in the same folder and renamed into place, readable by the
service only. A submission counts as landed once its sidecar exists (written after the blob).
`ingest.landing_s3.S3LandingStore` keeps the same objects in S3; `open_landing` picks either.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from pseudonymise.keys import TrialKey
from pseudonymise.landing_crypto import LandingDecryptError, decrypt_blob, encrypt_blob

FILE_MODE = 0o600
FOLDER_MODE = 0o700
SIDECAR_FORMAT = 1
SUBMISSION_ID_HEX_CHARS = 24

_LA_CODE = re.compile(r"[0-9]{3}")
_SUBMISSION_ID = re.compile(r"[0-9]{3}-[0-9a-f]{24}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class LandingError(RuntimeError):
    """A landing-store operation failed. Messages name LA codes and submission ids only."""


class LandingIntegrityError(LandingError):
    """A landed file fails to decrypt or no longer matches its recorded SHA-256 and size."""


class LandingKeyMismatch(LandingError):
    """The landed file was encrypted under another landing key (e.g. before a rotation)."""


def submission_id_for(la_code: str, content: bytes) -> str:
    """The submission's id: the LA and the first 96 bits of the content's SHA-256.

    Derived from the content, never from the file's name, so a byte-identical re-upload gets the
    same id and a corrected file under the same name gets a new one.
    """
    check_la_code(la_code)
    return f"{la_code}-{hashlib.sha256(content).hexdigest()[:SUBMISSION_ID_HEX_CHARS]}"


@dataclass(frozen=True)
class LandedFile:
    la_code: str
    submission_id: str
    sha256: str
    size: int
    received_at: datetime  # UTC
    key_id: str


class Landing(Protocol):
    """What the pipeline needs of a landing store (`LandingStore`, `S3LandingStore`)."""

    def put(
        self, submission_id: str, la_code: str, content: bytes, received_at: datetime
    ) -> LandedFile: ...

    def get(self, la_code: str, submission_id: str) -> bytes: ...

    def info(self, la_code: str, submission_id: str) -> LandedFile: ...

    def list(self) -> builtins.list[LandedFile]: ...

    def delete(self, la_code: str, submission_id: str) -> None: ...

    def older_than(self, cutoff: datetime) -> builtins.list[LandedFile]: ...


def check_la_code(la_code: str) -> str:
    if not _LA_CODE.fullmatch(la_code):
        raise ValueError("an LA code must be three digits")
    return la_code


def check_submission_id(la_code: str, submission_id: str) -> str:
    if not _SUBMISSION_ID.fullmatch(submission_id) or not submission_id.startswith(f"{la_code}-"):
        raise ValueError("a submission id must be '<la_code>-<24 hex>' for the same LA")
    return submission_id


def associated_data(la_code: str, submission_id: str) -> bytes:
    return f"{la_code}/{submission_id}".encode("ascii")


def as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC)


def check_key_id(key: TrialKey, landed: LandedFile) -> None:
    """Refuse a landed file encrypted under another landing key than `key`."""
    if landed.key_id != key.key_id:
        raise LandingKeyMismatch(
            f"submission {landed.submission_id} of LA {landed.la_code} was landed under key "
            f"{landed.key_id}, not the configured key {key.key_id}"
        )


def decrypt_landed(key: TrialKey, landed: LandedFile, blob: bytes) -> bytes:
    """The content of a landed blob, decrypted and checked against its sidecar's SHA-256 and
    size (shared by the local and the S3 landing stores)."""
    check_key_id(key, landed)
    content: bytes | None = None
    with contextlib.suppress(LandingDecryptError):
        content = decrypt_blob(key, blob, associated_data(landed.la_code, landed.submission_id))
    if content is None:
        raise LandingIntegrityError(
            f"submission {landed.submission_id} of LA {landed.la_code} fails to decrypt: "
            "the landed file was altered, moved or is missing"
        )
    if len(content) != landed.size or hashlib.sha256(content).hexdigest() != landed.sha256:
        raise LandingIntegrityError(
            f"submission {landed.submission_id} of LA {landed.la_code} does not match its "
            "recorded SHA-256"
        )
    return content


def _write_atomically(path: Path, content: bytes) -> None:
    """Write via a temporary file (named by `tempfile`, never after data) and a rename."""
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".landing-", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            os.fchmod(out.fileno(), FILE_MODE)
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def landing_record(
    key: TrialKey, la_code: str, submission_id: str, content: bytes, received_at: datetime
) -> LandedFile:
    """What landing `content` as `submission_id` records; refuses content of another id."""
    check_la_code(la_code)
    check_submission_id(la_code, submission_id)
    digest = hashlib.sha256(content).hexdigest()
    if not submission_id.endswith(digest[:SUBMISSION_ID_HEX_CHARS]):
        raise LandingError(f"submission {submission_id} is not the id of this content")
    return LandedFile(
        la_code=la_code,
        submission_id=submission_id,
        sha256=digest,
        size=len(content),
        received_at=as_utc(received_at),
        key_id=key.key_id,
    )


def intact_existing(existing: LandedFile, landed: LandedFile, *, blob_present: bool) -> LandedFile:
    """An earlier landing of the same submission, kept as it is if it is intact."""
    if existing.sha256 != landed.sha256 or not blob_present:
        raise LandingIntegrityError(
            f"submission {landed.submission_id} of LA {landed.la_code} is already landed, damaged"
        )
    return existing


class LandingStore:
    """Encrypted raw files on a local folder: `root/<la_code>/<submission_id>.{bin,json}`."""

    def __init__(self, root: Path, key: TrialKey) -> None:
        self._root = root
        self._key = key

    def __repr__(self) -> str:
        return f"LandingStore({str(self._root)!r})"

    @property
    def root(self) -> Path:
        return self._root

    def put(
        self, submission_id: str, la_code: str, content: bytes, received_at: datetime
    ) -> LandedFile:
        """Land `content`; if the submission has already landed intact, keep it as it is."""
        landed = landing_record(self._key, la_code, submission_id, content, received_at)
        existing = self._existing(la_code, submission_id)
        if existing is not None:
            blob_present = self._blob_path(la_code, submission_id).exists()
            return intact_existing(existing, landed, blob_present=blob_present)
        self._root.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        folder = self._folder(la_code)
        folder.mkdir(mode=FOLDER_MODE, exist_ok=True)
        blob = encrypt_blob(self._key, content, associated_data(la_code, submission_id))
        _write_atomically(self._blob_path(la_code, submission_id), blob)
        _write_atomically(self._sidecar_path(la_code, submission_id), sidecar_bytes(landed))
        return landed

    def get(self, la_code: str, submission_id: str) -> bytes:
        """The landed content, decrypted and checked against its SHA-256 and size."""
        landed = self._landed(la_code, submission_id)
        try:
            blob = self._blob_path(la_code, submission_id).read_bytes()
        except FileNotFoundError:
            blob = b""
        return decrypt_landed(self._key, landed, blob)

    def info(self, la_code: str, submission_id: str) -> LandedFile:
        """A landed submission's sidecar (no decryption)."""
        return self._landed(la_code, submission_id)

    def list(self) -> list[LandedFile]:
        """Every landed submission (those whose sidecar is written), by LA and id."""
        if not self._root.is_dir():
            return []
        landed = []
        for folder in sorted(self._root.iterdir()):
            if not (_LA_CODE.fullmatch(folder.name) and folder.is_dir()):
                continue
            for sidecar in sorted(folder.glob("*.json")):
                if _SUBMISSION_ID.fullmatch(sidecar.stem):
                    landed.append(self._read_sidecar(folder.name, sidecar.stem))
        return landed

    def delete(self, la_code: str, submission_id: str) -> None:
        """Remove a landed submission (sidecar first, so it stops counting as landed)."""
        for path in (
            self._sidecar_path(la_code, submission_id),
            self._blob_path(la_code, submission_id),
        ):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def older_than(self, cutoff: datetime) -> builtins.list[LandedFile]:
        """Landed submissions received before `cutoff` (for the retention job)."""
        limit = as_utc(cutoff)
        return [landed for landed in self.list() if landed.received_at < limit]

    def _folder(self, la_code: str) -> Path:
        return self._root / check_la_code(la_code)

    def _blob_path(self, la_code: str, submission_id: str) -> Path:
        return self._folder(la_code) / f"{check_submission_id(la_code, submission_id)}.bin"

    def _sidecar_path(self, la_code: str, submission_id: str) -> Path:
        return self._folder(la_code) / f"{check_submission_id(la_code, submission_id)}.json"

    def _existing(self, la_code: str, submission_id: str) -> LandedFile | None:
        if not self._sidecar_path(la_code, submission_id).exists():
            return None
        return self._read_sidecar(la_code, submission_id)

    def _landed(self, la_code: str, submission_id: str) -> LandedFile:
        landed = self._existing(la_code, submission_id)
        if landed is None:
            raise LandingError(f"submission {submission_id} of LA {la_code} is not landed")
        return landed

    def _read_sidecar(self, la_code: str, submission_id: str) -> LandedFile:
        path = self._sidecar_path(la_code, submission_id)
        landed: LandedFile | None = None
        with contextlib.suppress(ValueError, KeyError, TypeError):
            landed = parse_sidecar(json.loads(path.read_bytes()), la_code, submission_id)
        if landed is None:
            raise LandingIntegrityError(
                f"the sidecar of submission {submission_id} of LA {la_code} is not valid"
            )
        return landed


def sidecar_bytes(landed: LandedFile) -> bytes:
    document = {
        "format": SIDECAR_FORMAT,
        "la_code": landed.la_code,
        "submission_id": landed.submission_id,
        "sha256": landed.sha256,
        "size": landed.size,
        "received_at": landed.received_at.isoformat(),
        "key_id": landed.key_id,
    }
    return json.dumps(document, indent=2, sort_keys=True).encode("ascii") + b"\n"


def parse_sidecar(document: Any, la_code: str, submission_id: str) -> LandedFile | None:
    """The sidecar's record if it is well formed and names this very submission."""
    received_at = datetime.fromisoformat(document["received_at"])
    valid = (
        document["format"] == SIDECAR_FORMAT
        and document["la_code"] == la_code
        and document["submission_id"] == submission_id
        and isinstance(document["sha256"], str)
        and _SHA256.fullmatch(document["sha256"]) is not None
        and isinstance(document["size"], int)
        and isinstance(document["key_id"], str)
        and received_at.tzinfo is not None
    )
    if not valid:
        return None
    return LandedFile(
        la_code=la_code,
        submission_id=submission_id,
        sha256=document["sha256"],
        size=document["size"],
        received_at=received_at.astimezone(UTC),
        key_id=document["key_id"],
    )


def open_landing(url: str, key: TrialKey, env: Mapping[str, str] | None = None) -> Landing:
    """The landing store named by TRIAL_LANDING_URL: a folder path, `file://` or `s3://` URL.

    `env` (default os.environ) gives the S3 store's TRIAL_LANDING_S3_SSE.
    """
    scheme = urlparse(url).scheme.lower() if "://" in url else ""
    if scheme == "":
        return LandingStore(Path(url).expanduser(), key)
    if scheme == "file":
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise ValueError("a file:// URL must name a local path (file:///path)")
        return LandingStore(Path(unquote(parsed.path)), key)
    if scheme == "s3":
        from ingest.landing_s3 import open_s3_landing  # boto3 only when S3 is named

        return open_s3_landing(url, key, env)
    raise ValueError(
        f"TRIAL_LANDING_URL has an unsupported scheme {scheme!r}: use a folder path or s3://"
    )
