"""How a key rotation stops: refused, failed verification, or another failure.

Every message names LAs, datasets and counts only: never a key, a token or a value from a file.
"""

from __future__ import annotations


class RotationError(RuntimeError):
    """The rotation stopped; the warehouse in use is untouched. Names LAs, datasets, counts."""


class RotationRefused(RotationError):
    """Some current data cannot be re-keyed (its raw file is gone), or the warehouse is busy."""


class RotationVerificationFailed(RotationError):
    """The rebuilt warehouse does not match the old one; it is not swapped in."""
