"""Local record identifiers in the styles case-management systems use."""

from __future__ import annotations

import random
from enum import StrEnum

PREFIXES = {
    "person": "P",
    "family": "F",
    "episode": "EP",
    "event": "CSC",
    "keyworker": "KW",
    "activity": "ACT",
    "response": "S15-",
}


class IdStyle(StrEnum):
    PREFIXED = "prefixed"  # P000123
    NUMERIC = "numeric"  # 00012345: leading zeros that type inference would lose
    GUID = "guid"  # 36-character GUID, the longest an identifier may be


class IdMaker:
    """Hands out unique identifiers of each kind in one LA's style."""

    def __init__(self, style: IdStyle, rng: random.Random) -> None:
        self._style = style
        self._rng = rng
        self._next = {kind: rng.randrange(1_000, 90_000) for kind in PREFIXES}
        self._issued: set[str] = set()

    def new(self, kind: str) -> str:
        while True:
            candidate = self._candidate(kind)
            if candidate not in self._issued:
                self._issued.add(candidate)
                return candidate

    def _candidate(self, kind: str) -> str:
        number = self._next[kind]
        self._next[kind] += 1
        if self._style is IdStyle.PREFIXED:
            return f"{PREFIXES[kind]}{number:06d}"
        if self._style is IdStyle.NUMERIC:
            return f"{number:08d}"
        digits = f"{self._rng.getrandbits(128):032x}"
        return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def too_long(identifier: str, rng: random.Random) -> str:
    """The identifier lengthened past the 36-character limit (as a system joining IDs does)."""
    suffix = "".join(rng.choice("0123456789ABCDEF") for _ in range(40))
    return f"{identifier}-{suffix}"[:41]
