"""Taking a file: from the LA's inbox on the drop, or again from the landing store."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from ingest.processing.errors import PipelineError
from ingest.processing.report import rewrite_duplicate_report
from ingest.processing.services import Services
from ingest.storage.drop import Drop, DropObject, DropObjectChanged
from ingest.storage.landing import LandedFile, Landing, legacy_submission_id, submission_id_of
from ingest.warehouse import Warehouse


@dataclass(frozen=True)
class Received:
    """One received file, in memory only, identified without its name.

    `inbox` is the inbox file it was taken from; `unfinished` marks a landed submission taken
    again because it has no outcome on record (its process died): either leaves the inbox only
    once the outcome is recorded (`leave_inbox`).
    """

    la_code: str
    content: bytes = field(repr=False)
    received_at: datetime
    submission_id: str
    content_hmac: str  # keyed under the landing key: a plain hash of a small file is its content
    inbox: DropObject | None = field(default=None, repr=False, compare=False)
    unfinished: bool = False

    @property
    def size_bytes(self) -> int:
        return len(self.content)

    @property
    def receipt_id(self) -> str:
        """One receipt per (content, received time): a re-run of the same receipt replaces its
        audit rows, while the same bytes dropped again later are a new receipt (a duplicate)."""
        message = f"{self.submission_id}|{self.received_at.isoformat()}".encode()
        return hashlib.sha256(message).hexdigest()[:32]

    @property
    def taken_file(self) -> str | None:
        """The fingerprint of the inbox file it was taken from, if it was."""
        return None if self.inbox is None else self.inbox.fingerprint


def identify(services: Services, la_code: str, content: bytes) -> tuple[str, str]:
    """The submission id and keyed HMAC of a file's content (under the landing key)."""
    digest = services.landing.content_hmac(la_code, content)
    return submission_id_of(la_code, digest), digest


def is_duplicate(services: Services, la_code: str, content: bytes, digest: str) -> bool:
    """Was this file (its keyed HMAC `digest`) already processed, since ids were keyed or
    before (by the id it had then)?"""
    legacy = legacy_submission_id(la_code, content)
    return services.warehouse.is_duplicate(la_code, digest, legacy_submission_id=legacy)


def find_in_inbox(drop: Drop, la_code: str, fingerprint: str) -> DropObject | None:
    """The inbox file with this fingerprint, if it is still there."""
    return next((o for o in drop.list_inbox(la_code) if o.fingerprint == fingerprint), None)


def take_from_drop(services: Services, la_code: str, fingerprint: str) -> Received | None:
    """Read the file and land it encrypted (unless it is a duplicate); it stays in the inbox
    until its outcome is recorded (`leave_inbox`), so a process killed at any step loses nothing.

    None when there is nothing to take: the listed file is no longer there as listed
    (re-uploaded under its name, the new upload having a run of its own, or already taken by
    another run), or its outcome is already recorded (the process died before removing it: it
    is removed now).
    """
    drop = services.drop
    if drop is None:
        raise PipelineError("no drop is configured")
    services.warehouse.create_schema()
    obj = find_in_inbox(drop, la_code, fingerprint)
    if obj is None:
        return None
    taken = services.warehouse.taken_receipt(la_code, fingerprint)
    if taken:
        if taken[0].status == "duplicate":
            rewrite_duplicate_report(services, taken[0])
        drop.remove(obj)
        return None
    try:
        content = drop.read(obj)
    except DropObjectChanged:
        return None
    submission_id, digest = identify(services, la_code, content)
    received_at = services.clock()
    if not is_duplicate(services, la_code, content, digest):
        # Landed before (a run that died part way)? Then it keeps its first received time.
        landed = services.landing.put(submission_id, la_code, content, received_at)
        received_at = landed.received_at
    return Received(la_code, content, received_at, submission_id, digest, inbox=obj)


def take_from_landing(services: Services, la_code: str, submission_id: str) -> Received:
    """A landed file, as it was first received (under the id it was landed as: one landed
    before ids were keyed keeps its old id, and its HMAC is computed now)."""
    services.warehouse.create_schema()
    landed = services.landing.info(la_code, submission_id)
    content = services.landing.get(la_code, submission_id)
    digest = services.landing.content_hmac(la_code, content)
    unfinished = not services.warehouse.has_outcome(la_code, submission_id)
    return Received(
        la_code, content, landed.received_at, submission_id, digest, unfinished=unfinished
    )


def unfinished_submissions(landing: Landing, warehouse: Warehouse) -> list[LandedFile]:
    """Landed submissions with no outcome on record (landed, then the process died), oldest
    received first."""
    warehouse.create_schema()
    finished = warehouse.submissions_with_outcome()
    landed = [item for item in landing.list() if item.submission_id not in finished]
    return sorted(landed, key=lambda item: (item.received_at, item.submission_id))


def leave_inbox(services: Services, received: Received) -> None:
    """Remove the received file from the inbox, its outcome being recorded.

    An unfinished landed submission's inbox file is found by its content: the first one in the
    inbox with its id (a second copy is a duplicate, recorded as such by its own run).
    """
    drop = services.drop
    if drop is None:
        return
    if received.inbox is not None:
        drop.remove(received.inbox)
    elif received.unfinished:
        copy = _copy_in_inbox(services, drop, received.la_code, received.submission_id)
        if copy is not None:
            drop.remove(copy)


def _copy_in_inbox(
    services: Services, drop: Drop, la_code: str, submission_id: str
) -> DropObject | None:
    """The inbox file whose content has this id (keyed, or the plain-hash id of a file landed
    before ids were keyed)."""
    for obj in drop.list_inbox(la_code):
        try:
            content = drop.read(obj)
        except DropObjectChanged:
            continue
        ids = (identify(services, la_code, content)[0], legacy_submission_id(la_code, content))
        if submission_id in ids:
            return obj
    return None
