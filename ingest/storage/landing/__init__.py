"""The landing store: the `Landing` protocol, the folder store, and `open_landing`.

The S3 store (`ingest.storage.landing.s3`) is not imported here, so that importing the landing
store needs no boto3 (start-up speed).
"""

from ingest.storage.landing.base import (
    LandedFile,
    Landing,
    LandingError,
    LandingIntegrityError,
    LandingKeyMismatch,
    content_hmac,
    legacy_submission_id,
    submission_id_for,
    submission_id_of,
)
from ingest.storage.landing.local import LandingStore
from ingest.storage.landing.opening import open_configured_landing, open_landing

__all__ = [
    "LandedFile",
    "Landing",
    "LandingError",
    "LandingIntegrityError",
    "LandingKeyMismatch",
    "LandingStore",
    "content_hmac",
    "legacy_submission_id",
    "open_configured_landing",
    "open_landing",
    "submission_id_for",
    "submission_id_of",
]
