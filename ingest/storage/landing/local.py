"""The landing store on a local folder: `root/<la_code>/<submission_id>.{bin,json}`.

Both files are written to a temporary file in the same folder and renamed into place, readable
by the service only.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from ingest.storage.landing.base import (
    SUBMISSION_ID_PATTERN,
    LandedFile,
    LandingError,
    associated_data,
    check_submission_id,
    content_hmac,
    decrypt_landed,
    intact_existing,
    landing_record,
    read_sidecar,
    received_before,
    sidecar_bytes,
)
from pseudonymise.keys import TrialKey
from pseudonymise.la_code import check_la_code, is_la_code
from pseudonymise.landing_crypto import encrypt_blob

FILE_MODE = 0o600
FOLDER_MODE = 0o700
PART_PREFIX = ".landing-"
PART_SUFFIX = ".part"
# A temporary file untouched this long belongs to a killed write (`remove_abandoned_parts`).
ABANDONED_AFTER = timedelta(hours=1)


def _write_atomically(path: Path, content: bytes) -> None:
    """Write via a temporary file (named by `tempfile`, never after data) and a rename."""
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=PART_PREFIX, suffix=PART_SUFFIX)
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

    def content_hmac(self, la_code: str, content: bytes) -> str:
        return content_hmac(self._key, la_code, content)

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
            if not (is_la_code(folder.name) and folder.is_dir()):
                continue
            for sidecar in sorted(folder.glob("*.json")):
                if SUBMISSION_ID_PATTERN.fullmatch(sidecar.stem):
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
        return received_before(self.list(), cutoff)

    def remove_abandoned_parts(self, older_than: timedelta = ABANDONED_AFTER) -> int:
        """Remove temporary files of writes that were killed: a `.landing-*.part` is written
        at once and renamed, so one untouched for `older_than` has no writer left. How many."""
        if not self._root.is_dir():
            return 0
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        for part in self._root.glob(f"*/{PART_PREFIX}*{PART_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                if part.is_file() and part.stat().st_mtime < cutoff:
                    part.unlink()
                    removed += 1
        return removed

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
        raw = self._sidecar_path(la_code, submission_id).read_bytes()
        return read_sidecar(raw, la_code, submission_id)
