"""The landing store in S3: `TRIAL_LANDING_URL=s3://bucket/prefix`.

The same API and the same objects as the folder store (`ingest.storage.landing.local`), under
`<prefix>/<la_code>/`:

- `<submission_id>.bin`: the service's own ciphertext (`encrypt_blob` under the landing key, bound
  to `"<la_code>/<submission_id>"`). The service encrypts whatever the bucket does: server-side
  encryption (``TRIAL_LANDING_S3_SSE=AES256`` or ``aws:kms``) can be asked for on top, never
  instead;
- `<submission_id>.json`: the sidecar (keyed HMAC, size, received time, key id; never the LA's file
  name), written after the blob, so a submission counts as landed once its sidecar exists.

Keys hold LA codes and submission ids only, never file names.

Deleting (the retention job) removes every version of both objects, so a raw file does not
outlive its retention period as a noncurrent version on a versioned bucket. The service's
credentials therefore need ``s3:ListBucketVersions`` and ``s3:DeleteObjectVersion`` besides
``s3:ListBucket``, ``s3:GetObject``, ``s3:PutObject`` and ``s3:DeleteObject``.
"""

from __future__ import annotations

import builtins
import re
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ingest.settings import LANDING_S3_SSE, SSE_CHOICES
from ingest.storage.landing.base import (
    SUBMISSION_ID_PATTERN,
    LandedFile,
    LandingError,
    associated_data,
    check_submission_id,
    content_hmac,
    decrypt_landed,
    intact_existing,
    landing_record,
    read_sidecar,
    received_before,
    sidecar_bytes,
)
from ingest.storage.s3 import (
    NOT_FOUND_CODES,
    call_s3,
    list_entries,
    parse_s3_url,
    quieten_url_logging,
    s3_client,
    s3_error_code,
)
from pseudonymise.keys import TrialKey
from pseudonymise.la_code import LA_CODE_PATTERN, check_la_code
from pseudonymise.landing_crypto import encrypt_blob

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_SIDECAR_KEY = re.compile(
    f"(?P<la_code>{LA_CODE_PATTERN})/(?P<submission_id>{SUBMISSION_ID_PATTERN.pattern})\\.json"
)


class S3LandingStore:
    """Encrypted raw files in S3: `s3://bucket/prefix/<la_code>/<submission_id>.{bin,json}`."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        key: TrialKey,
        *,
        client: S3Client | None = None,
        server_side_encryption: str | None = None,
    ) -> None:
        if server_side_encryption not in (None, *SSE_CHOICES):
            raise ValueError(f"{LANDING_S3_SSE} must be one of {', '.join(SSE_CHOICES)} (or unset)")
        quieten_url_logging()  # as for the drop: no request-level DEBUG records by default
        self._bucket = bucket
        self._prefix = prefix
        self._key = key
        self._client = client if client is not None else s3_client()
        self._sse = server_side_encryption

    def __repr__(self) -> str:
        return f"S3LandingStore(bucket={self._bucket!r}, prefix={self._prefix!r})"

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def prefix(self) -> str:
        return self._prefix

    def content_hmac(self, la_code: str, content: bytes) -> str:
        return content_hmac(self._key, la_code, content)

    def put(
        self, submission_id: str, la_code: str, content: bytes, received_at: datetime
    ) -> LandedFile:
        """Land `content`; if the submission has already landed intact, keep it as it is."""
        landed = landing_record(self._key, la_code, submission_id, content, received_at)
        existing = self._existing(la_code, submission_id)
        if existing is not None:
            blob_present = self._blob_exists(la_code, submission_id)
            return intact_existing(existing, landed, blob_present=blob_present)
        blob = encrypt_blob(self._key, content, associated_data(la_code, submission_id))
        self._put(self._blob_key(la_code, submission_id), blob, "application/octet-stream")
        self._put(
            self._sidecar_key(la_code, submission_id), sidecar_bytes(landed), "application/json"
        )
        return landed

    def get(self, la_code: str, submission_id: str) -> bytes:
        """The landed content, decrypted and checked against its SHA-256 and size."""
        landed = self._landed(la_code, submission_id)
        blob = self._get_or_none(self._blob_key(la_code, submission_id), submission_id) or b""
        return decrypt_landed(self._key, landed, blob)

    def info(self, la_code: str, submission_id: str) -> LandedFile:
        """A landed submission's sidecar (no decryption)."""
        return self._landed(la_code, submission_id)

    def list(self) -> builtins.list[LandedFile]:
        """Every landed submission (those whose sidecar is written), by LA and id."""
        landed = []
        for key in self._all_keys():
            match = _SIDECAR_KEY.fullmatch(key[len(self._prefix) :])
            if match and match["submission_id"].startswith(match["la_code"] + "-"):
                found = self._existing(match["la_code"], match["submission_id"])
                if found is not None:  # deleted since the listing
                    landed.append(found)
        return sorted(landed, key=lambda item: (item.la_code, item.submission_id))

    def delete(self, la_code: str, submission_id: str) -> None:
        """Remove a landed submission, every version of it (sidecar first)."""
        for key in (
            self._sidecar_key(la_code, submission_id),
            self._blob_key(la_code, submission_id),
        ):
            what = f"delete submission {submission_id} of LA {la_code}"
            call_s3(LandingError, what, partial(self._delete_every_version, key))

    def older_than(self, cutoff: datetime) -> builtins.list[LandedFile]:
        """Landed submissions received before `cutoff` (for the retention job)."""
        return received_before(self.list(), cutoff)

    # --- objects -------------------------------------------------------------------------

    def _put(self, key: str, body: bytes, content_type: str) -> None:
        extra: dict[str, Any] = {"ServerSideEncryption": self._sse} if self._sse else {}
        call_s3(
            LandingError,
            "write to the S3 landing store",
            lambda: self._client.put_object(
                Bucket=self._bucket, Key=key, Body=body, ContentType=content_type, **extra
            ),
        )

    def _get_or_none(self, key: str, submission_id: str) -> bytes | None:
        failure = ""
        try:
            return self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            failure = s3_error_code(exc)
        if failure in NOT_FOUND_CODES:
            return None
        raise LandingError(f"cannot read submission {submission_id} from S3: {failure}")

    def _blob_exists(self, la_code: str, submission_id: str) -> bool:
        failure = ""
        try:
            self._client.head_object(
                Bucket=self._bucket, Key=self._blob_key(la_code, submission_id)
            )
        except (ClientError, BotoCoreError) as exc:
            failure = s3_error_code(exc)
        if failure in NOT_FOUND_CODES:
            return False
        if failure:
            raise LandingError(f"cannot check submission {submission_id} in S3: {failure}")
        return True

    def _all_keys(self) -> builtins.list[str]:
        def list_keys() -> builtins.list[str]:
            entries = list_entries(self._client, self._bucket, self._prefix, "Contents")
            return [item["Key"] for item in entries]

        return call_s3(LandingError, f"list the S3 landing store in {self._bucket}", list_keys)

    def _delete_every_version(self, key: str) -> None:
        """Delete `key`, and on a versioned bucket each of its versions and delete markers."""
        self._client.delete_object(Bucket=self._bucket, Key=key)
        paginator = self._client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=key):
            for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                version_id = entry.get("VersionId")
                if entry.get("Key") == key and version_id:
                    self._client.delete_object(Bucket=self._bucket, Key=key, VersionId=version_id)

    # --- submissions ---------------------------------------------------------------------

    def _folder(self, la_code: str) -> str:
        return f"{self._prefix}{check_la_code(la_code)}/"

    def _blob_key(self, la_code: str, submission_id: str) -> str:
        return f"{self._folder(la_code)}{check_submission_id(la_code, submission_id)}.bin"

    def _sidecar_key(self, la_code: str, submission_id: str) -> str:
        return f"{self._folder(la_code)}{check_submission_id(la_code, submission_id)}.json"

    def _existing(self, la_code: str, submission_id: str) -> LandedFile | None:
        sidecar = self._get_or_none(self._sidecar_key(la_code, submission_id), submission_id)
        if sidecar is None:
            return None
        return read_sidecar(sidecar, la_code, submission_id)

    def _landed(self, la_code: str, submission_id: str) -> LandedFile:
        landed = self._existing(la_code, submission_id)
        if landed is None:
            raise LandingError(f"submission {submission_id} of LA {la_code} is not landed")
        return landed


def open_s3_landing(url: str, key: TrialKey, sse: str | None = None) -> S3LandingStore:
    """The landing store named by `TRIAL_LANDING_URL=s3://bucket/prefix` (for `open_landing`).

    `sse` (TRIAL_LANDING_S3_SSE: ``AES256`` or ``aws:kms``, optional) asks S3 to encrypt too.
    """
    bucket, prefix = parse_s3_url(url, "TRIAL_LANDING_URL")
    return S3LandingStore(bucket, prefix, key, server_side_encryption=sse)
