"""The S3 drop: `TRIAL_DROP_URL=s3://bucket/prefix`, one inbox per LA at `<prefix>/<la_code>/`.

Same protocol as the folder drop (`ingest.storage.drop.local`): the LA is identified by its
prefix (which the bucket policy lets only that LA write), the file name is data and never leaves
this module, and a file's `version` is its ETag, so a corrected re-upload under the same key is
a new object. The client, the AWS environment and the rules for S3 errors and logs are in
`ingest.storage.s3`: errors name the LA, the object's fingerprint and the S3 error code only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ingest.storage.drop.base import (
    REPORTS_FOLDER,
    DropError,
    DropObject,
    DropObjectChanged,
    changed_message,
    check_report_name,
    compute_fingerprint,
    is_delivered_file_name,
    listed_object,
    unusable_name,
)
from ingest.storage.s3 import (
    NOT_FOUND_CODES,
    S3_PAGE_SIZE,
    call_s3,
    list_entries,
    parse_s3_url,
    quieten_url_logging,
    s3_client,
    s3_error_code,
)
from pseudonymise.keys import TrialKey
from pseudonymise.la_code import check_la_code, is_la_code

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_PRECONDITION_CODES = frozenset({"412", "PreconditionFailed"})


class S3Drop:
    """A drop in an S3 bucket: `s3://bucket/prefix/<la_code>/<file>`."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        fingerprint_key: TrialKey,
        *,
        client: S3Client | None = None,
        page_size: int = S3_PAGE_SIZE,
    ) -> None:
        if not 1 <= page_size <= S3_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {S3_PAGE_SIZE}")
        quieten_url_logging()
        self._bucket = bucket
        self._prefix = prefix
        self._key = fingerprint_key
        self._client = client if client is not None else s3_client()
        self._page_size = page_size

    def __repr__(self) -> str:
        return f"S3Drop(bucket={self._bucket!r}, prefix={self._prefix!r})"

    @property
    def client(self) -> S3Client:
        return self._client

    def close(self) -> None:
        """Nothing to release: each S3 request is its own (pooled) HTTP exchange."""

    def fingerprint(self, obj: DropObject) -> str:
        return compute_fingerprint(self._key, obj.la_code, obj.name, obj.size, obj.version)

    def la_codes_present(self) -> list[str]:
        """Prefixes named as LA codes directly under the drop's prefix; others are ignored."""
        what = f"list the LA folders of the S3 drop in bucket {self._bucket}"
        prefixes = call_s3(DropError, what, lambda: self._list(self._prefix, "CommonPrefixes"))
        codes = {entry.get("Prefix", "")[len(self._prefix) :].rstrip("/") for entry in prefixes}
        return sorted(code for code in codes if is_la_code(code))

    def list_inbox(self, la_code: str) -> list[DropObject]:
        """Objects directly under `<la_code>/`: not `reports/` or any other sub-prefix."""
        inbox = self._inbox(la_code)
        what = f"list LA {la_code}'s inbox on the S3 drop"
        objects = []
        for item in call_s3(DropError, what, lambda: self._list(inbox, "Contents")):
            name = item["Key"][len(inbox) :]
            if name and is_delivered_file_name(name):
                objects.append(self._object(la_code, name, item["Size"], item["ETag"]))
        return sorted(objects, key=lambda obj: obj.fingerprint)

    def read(self, obj: DropObject) -> bytes:
        """The listed version's bytes: the GET is conditional on the listed ETag."""
        what = f"read file {obj.fingerprint} of LA {obj.la_code}"
        failure = ""
        content = b""
        try:
            response = self._client.get_object(
                Bucket=self._bucket, Key=self._object_key(obj), IfMatch=_quoted(obj.version)
            )
            content = response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            failure = s3_error_code(exc)
        if failure in _PRECONDITION_CODES:
            raise DropObjectChanged(changed_message(obj))
        if failure:
            raise DropError(f"cannot {what}: {failure}")
        if len(content) != obj.size:
            raise DropObjectChanged(changed_message(obj))
        return content

    def remove(self, obj: DropObject) -> None:
        """Delete the listed version only; a re-upload under the same key is kept.

        On a versioned bucket the listed version is deleted by its version id, which is exact
        (and leaves no copy of the file behind as a noncurrent version). Otherwise the delete
        is conditional on the listed ETag (`If-Match`), and the store refuses it with 412 if
        the object was replaced. The head request before it narrows the window on stores that
        ignore `If-Match` on DELETE; on those, a replacement uploaded between the head and the
        delete would still be lost (the LA's upload tool sees it vanish and can upload again).
        """
        key = self._object_key(obj)

        def remove_if_unchanged() -> None:
            head = self._head_or_none(key)
            if head is None or (head["ETag"].strip('"'), head["ContentLength"]) != (
                obj.version,
                obj.size,
            ):
                return  # gone already, or a newer upload under the same key: keep it
            self._delete_listed_version(key, obj.version, head.get("VersionId"))

        call_s3(
            DropError, f"remove file {obj.fingerprint} of LA {obj.la_code}", remove_if_unchanged
        )

    def write_report(self, la_code: str, name: str, content: bytes) -> None:
        key = f"{self._inbox(la_code)}{REPORTS_FOLDER}/{check_report_name(name)}"
        call_s3(
            DropError,
            f"write a report to LA {la_code}'s drop",
            lambda: self._client.put_object(Bucket=self._bucket, Key=key, Body=content),
        )

    def _list(self, prefix: str, part: str) -> list[Any]:
        """Every page's `part` ("Contents" or "CommonPrefixes") directly under `prefix`."""
        return list_entries(
            self._client, self._bucket, prefix, part, delimiter="/", page_size=self._page_size
        )

    def _head_or_none(self, key: str) -> Any:
        try:
            return self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if s3_error_code(exc) in NOT_FOUND_CODES:
                return None
            raise

    def _delete_listed_version(self, key: str, etag: str, version_id: str | None) -> None:
        try:
            if version_id and version_id != "null":
                self._client.delete_object(Bucket=self._bucket, Key=key, VersionId=version_id)
            else:
                self._client.delete_object(Bucket=self._bucket, Key=key, IfMatch=_quoted(etag))
        except ClientError as exc:
            if s3_error_code(exc) not in _PRECONDITION_CODES | NOT_FOUND_CODES:
                raise

    def _inbox(self, la_code: str) -> str:
        return f"{self._prefix}{check_la_code(la_code)}/"

    def _object_key(self, obj: DropObject) -> str:
        if "/" in obj.name or obj.name in ("", ".", ".."):
            raise unusable_name(obj)
        return f"{self._inbox(obj.la_code)}{obj.name}"

    def _object(self, la_code: str, name: str, size: int, etag: str) -> DropObject:
        return listed_object(self._key, la_code, name, size, etag.strip('"'))


def _quoted(etag: str) -> str:
    return f'"{etag}"'


def open_s3_drop(url: str, fingerprint_key: TrialKey) -> S3Drop:
    """The drop named by `TRIAL_DROP_URL=s3://bucket/prefix` (for `open_drop`)."""
    bucket, prefix = parse_s3_url(url, "TRIAL_DROP_URL")
    return S3Drop(bucket, prefix, fingerprint_key)
