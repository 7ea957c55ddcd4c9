"""The rotation's plan: which landed files are replayed, which processed returns are lost (their
raw file deleted by retention), which landed files were never processed; and the refusal to
lose returns unless the operator allows it."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.processing import Received
from ingest.rotation.errors import RotationRefused
from ingest.storage.landing import LandedFile, Landing
from ingest.warehouse import Warehouse


@dataclass(frozen=True)
class LostReturn:
    """A processed file whose raw file is no longer landed (deleted by retention)."""

    la_code: str
    dataset: str | None  # None: the file as a whole (rejected before any dataset)
    submission_id: str
    status: str


@dataclass(frozen=True)
class RotationPlan:
    replay: tuple[LandedFile, ...]  # processed before, in received order
    lost: tuple[LostReturn, ...]
    unprocessed: tuple[LandedFile, ...]  # landed but never processed: left out, reported

    def lost_pairs(self) -> list[str]:
        """`LA x dataset` of the lost returns, for messages."""
        pairs = {f"{r.la_code} x {r.dataset or 'whole file'}" for r in self.lost}
        return sorted(pairs)


def receipt_of(landed: LandedFile) -> str:
    """The receipt id the pipeline gave the landed file when it first processed it."""
    return Received(landed.la_code, b"", landed.received_at, landed.submission_id, "").receipt_id


def plan_rotation(landing: Landing, old: Warehouse) -> RotationPlan:
    """What can be replayed, what is lost and what was never processed."""
    audit = [r for r in old.submissions() if r.status != "duplicate"]
    landed = sorted(landing.list(), key=lambda f: (f.received_at, f.submission_id))
    processed = {r.receipt_id for r in audit}
    replay = tuple(f for f in landed if receipt_of(f) in processed)
    unprocessed = tuple(f for f in landed if receipt_of(f) not in processed)
    replayed_receipts = {receipt_of(f) for f in replay}
    lost = tuple(
        LostReturn(r.la_code, r.dataset, r.submission_id, str(r.status))
        for r in audit
        if r.receipt_id not in replayed_receipts
    )
    return RotationPlan(replay=replay, lost=lost, unprocessed=unprocessed)


def refuse_unless_allowed(plan: RotationPlan, *, allow_loss: bool) -> None:
    if plan.lost and not allow_loss:
        raise RotationRefused(
            f"{len({r.submission_id for r in plan.lost})} processed file(s) are no longer in "
            "the landing store (deleted by retention), so their rows cannot be re-keyed: "
            + ", ".join(plan.lost_pairs())
            + ". Rotation would drop them; pass --allow-loss to proceed anyway."
        )
