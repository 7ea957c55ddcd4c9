"""Taking a file: from the LA's inbox on the drop, or again from the landing store."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from ingest.processing.errors import PipelineError
from ingest.processing.services import Services
from ingest.storage.drop import Drop, DropObject, DropObjectChanged
from ingest.storage.landing import legacy_submission_id, submission_id_of


@dataclass(frozen=True)
class Received:
    """One received file, in memory only, identified without its name."""

    la_code: str
    content: bytes = field(repr=False)
    received_at: datetime
    submission_id: str
    content_hmac: str  # keyed under the landing key: a plain hash of a small file is its content

    @property
    def size_bytes(self) -> int:
        return len(self.content)

    @property
    def receipt_id(self) -> str:
        """One receipt per (content, received time): a re-run of the same receipt replaces its
        audit rows, while the same bytes dropped again later are a new receipt (a duplicate)."""
        message = f"{self.submission_id}|{self.received_at.isoformat()}".encode()
        return hashlib.sha256(message).hexdigest()[:32]


def is_duplicate(services: Services, la_code: str, content: bytes, digest: str) -> bool:
    """Was this file (its keyed HMAC `digest`) already processed, since ids were keyed or
    before (by the id it had then)?"""
    legacy = legacy_submission_id(la_code, content)
    return services.warehouse.is_duplicate(la_code, digest, legacy_submission_id=legacy)


def find_in_inbox(drop: Drop, la_code: str, fingerprint: str) -> DropObject | None:
    """The inbox file with this fingerprint, if it is still there."""
    return next((o for o in drop.list_inbox(la_code) if o.fingerprint == fingerprint), None)


def take_from_drop(services: Services, la_code: str, fingerprint: str) -> Received | None:
    """Read the file, land it encrypted (unless it is a duplicate), then empty it from the inbox.

    Landing comes before removal, so a failure in between leaves the file where it was. None
    when the listed file is no longer there as listed: re-uploaded under its name (the new
    upload has a run of its own) or already taken by another run.
    """
    drop = services.drop
    if drop is None:
        raise PipelineError("no drop is configured")
    services.warehouse.create_schema()
    obj = find_in_inbox(drop, la_code, fingerprint)
    if obj is None:
        return None
    try:
        content = drop.read(obj)
    except DropObjectChanged:
        return None
    digest = services.landing.content_hmac(la_code, content)
    submission_id = submission_id_of(la_code, digest)
    received_at = services.clock()
    if not is_duplicate(services, la_code, content, digest):
        # Landed before (a run that failed part way)? Then it keeps its first received time.
        landed = services.landing.put(submission_id, la_code, content, received_at)
        received_at = landed.received_at
    drop.remove(obj)
    return Received(la_code, content, received_at, submission_id, digest)


def take_from_landing(services: Services, la_code: str, submission_id: str) -> Received:
    """A landed file, as it was first received (under the id it was landed as: one landed
    before ids were keyed keeps its old id, and its HMAC is computed now)."""
    services.warehouse.create_schema()
    landed = services.landing.info(la_code, submission_id)
    content = services.landing.get(la_code, submission_id)
    digest = services.landing.content_hmac(la_code, content)
    return Received(la_code, content, landed.received_at, submission_id, digest)
