"""Decompressing ZIP parts against a budget of unpacked bytes, the defence against ZIP bombs.

A member's declared size is checked first, but not trusted: every part is read in chunks and
each chunk counted against the budget, so an archive that lies about its sizes is stopped
after the budget, not after it has filled the memory. The budget applies to a workbook's own
parts too (an XLSX is a ZIP).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

DEFAULT_MAX_UNPACKED_BYTES = 512 * 2**20
_CHUNK = 2**20


class TooLarge(Exception):
    """The unpacked content would exceed the budget."""


@dataclass
class Budget:
    """Bytes that may still be unpacked from the submission."""

    limit: int

    def __post_init__(self) -> None:
        self.remaining = self.limit

    def check(self, size: int) -> None:
        if size > self.remaining:
            raise TooLarge

    def take(self, size: int) -> None:
        self.check(size)
        self.remaining -= size


def unpack(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget) -> bytes:
    """A member's bytes, read in chunks against the budget: a header's size is not trusted."""
    return b"".join(chunks(archive, info, budget))


def chunks(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget) -> Iterator[bytes]:
    with archive.open(info) as stream:
        while chunk := stream.read(min(_CHUNK, budget.remaining + 1)):
            budget.take(len(chunk))
            yield chunk
