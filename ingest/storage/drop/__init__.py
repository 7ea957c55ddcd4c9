"""The LA drop: the `Drop` protocol, the folder drop, and `open_drop` for TRIAL_DROP_URL.

The S3 and SFTP drops (`ingest.storage.drop.s3`, `ingest.storage.drop.sftp`) are not imported
here, so that importing the drop needs neither boto3 nor paramiko (start-up speed).
"""

from ingest.storage.drop.base import (
    REPORTS_FOLDER,
    Drop,
    DropError,
    DropObject,
    DropObjectChanged,
    compute_fingerprint,
    is_delivered_file_name,
)
from ingest.storage.drop.local import LocalFolderDrop
from ingest.storage.drop.opening import open_configured_drop, open_drop

__all__ = [
    "REPORTS_FOLDER",
    "Drop",
    "DropError",
    "DropObject",
    "DropObjectChanged",
    "LocalFolderDrop",
    "compute_fingerprint",
    "is_delivered_file_name",
    "open_configured_drop",
    "open_drop",
]
