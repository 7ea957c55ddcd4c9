"""The landing store: raw LA files, encrypted at rest, kept for the retention period.

A file is copied off the drop into the landing store before anything else happens, so that it
can be reprocessed (after a key rotation or a schema fix) until retention deletes it. Each
submission is two files under `<la_code>/`:

- `<submission_id>.bin`: `encrypt_blob(landing key, content, "<la_code>/<submission_id>")`, so a
  blob renamed or moved to another LA fails to decrypt;
- `<submission_id>.json`: the sidecar (keyed HMAC and size of the content, received time in UTC,
  key id). Never the LA's file name. A sidecar of format 1 (before ids were keyed) holds the
  content's plain SHA-256 instead, and is still read.

A submission counts as landed once its sidecar exists (written after the blob). This module
holds the `Landing` protocol and the rules both stores share: the folder store (`local`) and
the S3 store (`s3`). `open_landing` (in `opening`) picks one from TRIAL_LANDING_URL.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pseudonymise.keys import TrialKey
from pseudonymise.la_code import LA_CODE_PATTERN, check_la_code
from pseudonymise.landing_crypto import LandingDecryptError, decrypt_blob

SIDECAR_FORMAT = 2
_LEGACY_SIDECAR_FORMAT = 1  # the content's plain SHA-256, before ids were keyed
SUBMISSION_ID_HEX_CHARS = 24
_CONTENT_LABEL = b"trial-ingest content hmac v1"

SUBMISSION_ID_PATTERN = re.compile(f"{LA_CODE_PATTERN}-[0-9a-f]{{{SUBMISSION_ID_HEX_CHARS}}}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class LandingError(RuntimeError):
    """A landing-store operation failed. Messages name LA codes and submission ids only."""


class LandingIntegrityError(LandingError):
    """A landed file fails to decrypt or no longer matches its recorded HMAC and size."""


class LandingKeyMismatch(LandingError):
    """The landed file was encrypted under another landing key (e.g. before a rotation)."""


def content_hmac(key: TrialKey, la_code: str, content: bytes) -> str:
    """HMAC-SHA-256 of `<la_code>|<content>` under the landing key, as 64 hex characters.

    Keyed, because a plain hash of a small file is its content: a one-row file's SHA-256 was
    brute-forced back to the person's ID. Evaluators never hold the landing key. The HMAC key
    is derived under a fixed label, so it never equals a drop fingerprint or a token.
    """
    check_la_code(la_code)
    subkey = hmac.new(key.secret, _CONTENT_LABEL, hashlib.sha256).digest()
    mac = hmac.new(subkey, f"{la_code}|".encode("ascii"), hashlib.sha256)
    mac.update(content)
    return mac.hexdigest()


def submission_id_of(la_code: str, digest: str) -> str:
    """The submission's id: the LA and the first 96 bits of the content's keyed HMAC."""
    check_la_code(la_code)
    return f"{la_code}-{digest[:SUBMISSION_ID_HEX_CHARS]}"


def submission_id_for(key: TrialKey, la_code: str, content: bytes) -> str:
    """The submission's id of `content` under the landing key `key`.

    Derived from the content, never from the file's name, so a byte-identical re-upload gets the
    same id and a corrected file under the same name gets a new one.
    """
    return submission_id_of(la_code, content_hmac(key, la_code, content))


def legacy_submission_id(la_code: str, content: bytes) -> str:
    """The id `content` got before ids were keyed: the first 96 bits of its plain SHA-256.

    Only to recognise a copy of a file processed then, whose audit rows already carry this id;
    never given to a new file nor stored anew.
    """
    check_la_code(la_code)
    return f"{la_code}-{hashlib.sha256(content).hexdigest()[:SUBMISSION_ID_HEX_CHARS]}"


@dataclass(frozen=True)
class LandedFile:
    la_code: str
    submission_id: str
    content_hmac: str | None  # None: landed before ids were keyed (see `legacy_sha256`)
    size: int
    received_at: datetime  # UTC
    key_id: str
    legacy_sha256: str | None = None  # a format 1 sidecar's check value, never stored anew


class Landing(Protocol):
    """What the pipeline needs of a landing store (`LandingStore`, `S3LandingStore`)."""

    def content_hmac(self, la_code: str, content: bytes) -> str:
        """`content_hmac` under this store's landing key."""
        ...

    def put(
        self, submission_id: str, la_code: str, content: bytes, received_at: datetime
    ) -> LandedFile: ...

    def get(self, la_code: str, submission_id: str) -> bytes: ...

    def info(self, la_code: str, submission_id: str) -> LandedFile: ...

    def list(self) -> builtins.list[LandedFile]: ...

    def delete(self, la_code: str, submission_id: str) -> None: ...

    def older_than(self, cutoff: datetime) -> builtins.list[LandedFile]: ...


def check_submission_id(la_code: str, submission_id: str) -> str:
    if not SUBMISSION_ID_PATTERN.fullmatch(submission_id) or not submission_id.startswith(
        f"{la_code}-"
    ):
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
    """The content of a landed blob, decrypted and checked against its sidecar's HMAC and size
    (shared by the local and the S3 landing stores)."""
    check_key_id(key, landed)
    content: bytes | None = None
    with contextlib.suppress(LandingDecryptError):
        content = decrypt_blob(key, blob, associated_data(landed.la_code, landed.submission_id))
    if content is None:
        raise LandingIntegrityError(
            f"submission {landed.submission_id} of LA {landed.la_code} fails to decrypt: "
            "the landed file was altered, moved or is missing"
        )
    if len(content) != landed.size or not _matches_sidecar(key, landed, content):
        raise LandingIntegrityError(
            f"submission {landed.submission_id} of LA {landed.la_code} does not match its "
            "recorded HMAC"
        )
    return content


def _matches_sidecar(key: TrialKey, landed: LandedFile, content: bytes) -> bool:
    if landed.content_hmac is None:
        legacy = hashlib.sha256(content).hexdigest()
        return hmac.compare_digest(legacy, landed.legacy_sha256 or "")
    return hmac.compare_digest(content_hmac(key, landed.la_code, content), landed.content_hmac)


def landing_record(
    key: TrialKey, la_code: str, submission_id: str, content: bytes, received_at: datetime
) -> LandedFile:
    """What landing `content` as `submission_id` records; refuses content of another id."""
    check_la_code(la_code)
    check_submission_id(la_code, submission_id)
    digest = content_hmac(key, la_code, content)
    if submission_id != submission_id_of(la_code, digest):
        raise LandingError(f"submission {submission_id} is not the id of this content")
    return LandedFile(
        la_code=la_code,
        submission_id=submission_id,
        content_hmac=digest,
        size=len(content),
        received_at=as_utc(received_at),
        key_id=key.key_id,
    )


def intact_existing(existing: LandedFile, landed: LandedFile, *, blob_present: bool) -> LandedFile:
    """An earlier landing of the same submission, kept as it is if it is intact."""
    if existing.content_hmac != landed.content_hmac or not blob_present:
        raise LandingIntegrityError(
            f"submission {landed.submission_id} of LA {landed.la_code} is already landed, damaged"
        )
    return existing


def sidecar_bytes(landed: LandedFile) -> bytes:
    if landed.content_hmac is None:
        raise LandingError(f"submission {landed.submission_id} has no keyed HMAC to record")
    document = {
        "format": SIDECAR_FORMAT,
        "la_code": landed.la_code,
        "submission_id": landed.submission_id,
        "content_hmac": landed.content_hmac,
        "size": landed.size,
        "received_at": landed.received_at.isoformat(),
        "key_id": landed.key_id,
    }
    return json.dumps(document, indent=2, sort_keys=True).encode("ascii") + b"\n"


def parse_sidecar(document: Any, la_code: str, submission_id: str) -> LandedFile | None:
    """The sidecar's record if it is well formed and names this very submission (a format 1
    sidecar records the plain SHA-256, format 2 the keyed HMAC)."""
    received_at = datetime.fromisoformat(document["received_at"])
    digest_field = "sha256" if document["format"] == _LEGACY_SIDECAR_FORMAT else "content_hmac"
    digest = document[digest_field]
    valid = (
        document["format"] in (_LEGACY_SIDECAR_FORMAT, SIDECAR_FORMAT)
        and document["la_code"] == la_code
        and document["submission_id"] == submission_id
        and isinstance(digest, str)
        and _HEX64.fullmatch(digest) is not None
        and isinstance(document["size"], int)
        and isinstance(document["key_id"], str)
        and received_at.tzinfo is not None
    )
    if not valid:
        return None
    legacy = document["format"] == _LEGACY_SIDECAR_FORMAT
    return LandedFile(
        la_code=la_code,
        submission_id=submission_id,
        content_hmac=None if legacy else digest,
        size=document["size"],
        received_at=received_at.astimezone(UTC),
        key_id=document["key_id"],
        legacy_sha256=digest if legacy else None,
    )


def read_sidecar(raw: bytes, la_code: str, submission_id: str) -> LandedFile:
    """The record in a sidecar's bytes; `LandingIntegrityError` if it is not a valid sidecar of
    this very submission."""
    landed: LandedFile | None = None
    with contextlib.suppress(ValueError, KeyError, TypeError):
        landed = parse_sidecar(json.loads(raw), la_code, submission_id)
    if landed is None:
        raise LandingIntegrityError(
            f"the sidecar of submission {submission_id} of LA {la_code} is not valid"
        )
    return landed


def received_before(
    landed: builtins.list[LandedFile], cutoff: datetime
) -> builtins.list[LandedFile]:
    """The landed submissions received before `cutoff` (for the retention job)."""
    limit = as_utc(cutoff)
    return [item for item in landed if item.received_at < limit]
