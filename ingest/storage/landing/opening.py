"""The landing store named by TRIAL_LANDING_URL: a folder path, `file://` or `s3://` URL."""

from __future__ import annotations

from collections.abc import Mapping

from ingest.storage.landing.base import Landing
from ingest.storage.landing.local import LandingStore
from ingest.storage.url import folder_path, url_scheme
from pseudonymise.keys import TrialKey


def open_landing(url: str, key: TrialKey, env: Mapping[str, str] | None = None) -> Landing:
    """The landing store named by TRIAL_LANDING_URL: a folder path, `file://` or `s3://` URL.

    `env` (default os.environ) gives the S3 store's TRIAL_LANDING_S3_SSE.
    """
    folder = folder_path(url)
    if folder is not None:
        return LandingStore(folder, key)
    scheme = url_scheme(url)
    if scheme == "s3":
        from ingest.storage.landing.s3 import open_s3_landing  # boto3 only when S3 is named

        return open_s3_landing(url, key, env)
    raise ValueError(
        f"TRIAL_LANDING_URL has an unsupported scheme {scheme!r}: use a folder path or s3://"
    )
