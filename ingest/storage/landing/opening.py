"""The landing store named by TRIAL_LANDING_URL: a folder path, `file://` or `s3://` URL."""

from __future__ import annotations

from ingest.settings import LANDING_URL, Settings
from ingest.storage.landing.base import Landing
from ingest.storage.landing.local import LandingStore
from ingest.storage.url import folder_path, url_scheme
from pseudonymise.keys import TrialKey


def open_landing(url: str, key: TrialKey, s3_sse: str | None = None) -> Landing:
    """The landing store named by TRIAL_LANDING_URL: a folder path, `file://` or `s3://` URL.

    `s3_sse` (TRIAL_LANDING_S3_SSE) asks an S3 store for S3's own encryption too.
    """
    folder = folder_path(url)
    if folder is not None:
        return LandingStore(folder, key)
    scheme = url_scheme(url)
    if scheme == "s3":
        from ingest.storage.landing.s3 import open_s3_landing  # boto3 only when S3 is named

        return open_s3_landing(url, key, s3_sse)
    raise ValueError(
        f"TRIAL_LANDING_URL has an unsupported scheme {scheme!r}: use a folder path or s3://"
    )


def open_configured_landing(settings: Settings) -> Landing:
    """The landing store the settings name, under the landing key they name."""
    url = settings.require(LANDING_URL, "the encrypted landing store of raw files")
    return open_landing(url, settings.key("LANDING"), settings.landing_s3_sse)
