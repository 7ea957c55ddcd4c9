"""The drop named by TRIAL_DROP_URL: a folder path, `file://`, `s3://` or `sftp://` URL."""

from __future__ import annotations

from ingest.settings import DROP_URL, Settings, SftpSettings
from ingest.storage.drop.base import Drop
from ingest.storage.drop.local import LocalFolderDrop
from ingest.storage.url import folder_path, url_scheme
from pseudonymise.keys import TrialKey


def open_drop(url: str, fingerprint_key: TrialKey, sftp: SftpSettings | None = None) -> Drop:
    """The drop named by TRIAL_DROP_URL: a folder path, `file://`, `s3://` or `sftp://` URL.

    The S3 and SFTP drops are imported only when named (lazily, for start-up speed), so the
    local default needs neither boto3 nor paramiko. Error messages name the scheme only: a URL
    may carry a password.
    """
    folder = folder_path(url)
    if folder is not None:
        return LocalFolderDrop(folder, fingerprint_key)
    scheme = url_scheme(url)
    if scheme == "s3":
        from ingest.storage.drop.s3 import open_s3_drop

        return open_s3_drop(url, fingerprint_key)
    if scheme == "sftp":
        from ingest.storage.drop.sftp import open_sftp_drop

        return open_sftp_drop(url, fingerprint_key, sftp or SftpSettings())
    raise ValueError(f"TRIAL_DROP_URL has an unsupported scheme {scheme!r}: use a folder path")


def open_configured_drop(settings: Settings) -> Drop:
    """The drop the settings name; its files are fingerprinted under the landing key."""
    url = settings.require(DROP_URL, "the LA drop")
    return open_drop(url, settings.key("LANDING"), settings.sftp)
