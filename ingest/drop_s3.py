"""The S3 drop: `TRIAL_DROP_URL=s3://bucket/prefix`, one inbox per LA at `<prefix>/<la_code>/`.

Same protocol as `ingest.drop.LocalFolderDrop`: the LA is identified by its prefix (which the
bucket policy lets only that LA write), the file name is data and never leaves this module,
and a file's `version` is its ETag, so a corrected re-upload under the same key is a new
object.

The endpoint, region and credentials come from the standard AWS environment
(`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, an instance role…), so the same code
talks to AWS, to an S3-compatible store or to a test server.

Object keys hold the LAs' file names, so no key, no botocore message (which can quote the
request URL) and no exception chain leaves this module: errors name the LA, the object's
fingerprint and the S3 error code only. For the same reason botocore's and urllib3's DEBUG
output, which logs request URLs, is kept off unless someone sets those loggers' levels
explicitly (`quieten_url_logging`).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ingest.drop import (
    LA_CODE_PATTERN,
    REPORTS_FOLDER,
    DropError,
    DropObject,
    DropObjectChanged,
    check_la_code,
    check_report_name,
    compute_fingerprint,
    is_delivered_file_name,
)
from pseudonymise.keys import TrialKey

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")

S3_PAGE_SIZE = 1000  # the most S3 returns in one ListObjectsV2 page
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_PRECONDITION_CODES = frozenset({"412", "PreconditionFailed"})
# Loggers that print request URLs (bucket and key, so the LA's file name) at DEBUG.
_URL_LOGGERS = ("boto3", "botocore", "s3transfer", "urllib3.connectionpool")


def quieten_url_logging() -> None:
    """Keep DEBUG records that carry object keys out of the logs.

    Only loggers whose level nobody has set are raised to INFO: an operator who deliberately
    turns on botocore DEBUG (to debug the endpoint, say) still can.
    """
    for name in _URL_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)


_session_lock = threading.Lock()
_shared_session: list[boto3.session.Session] = []


def s3_client() -> S3Client:
    """An S3 client configured by the standard AWS environment, with bounded timeouts.

    botocore's "standard" retry mode retries throttling, 5xx answers and connection errors with
    backoff; it never retries access or precondition failures. Clients come from one session
    per process (creating a session loads botocore's models, ~0.3 s each time); a session is
    not thread-safe, so clients are made under a lock. The clients themselves are thread-safe.
    """
    config = Config(
        connect_timeout=10,
        read_timeout=60,
        retries={"mode": "standard", "max_attempts": 5},
    )
    with _session_lock:
        if not _shared_session:
            _shared_session.append(boto3.session.Session())
        return _shared_session[0].client("s3", config=config)


def parse_s3_url(url: str, variable: str) -> tuple[str, str]:
    """(bucket, prefix) from `s3://bucket/prefix`; the prefix is '' or ends with '/'.

    Messages name the variable, not the URL: a mistyped URL could hold anything.
    """
    parsed = urlparse(url)
    if parsed.scheme.lower() != "s3":
        raise ValueError(f"{variable} must be an s3://bucket/prefix URL")
    if parsed.username or parsed.password or parsed.port or parsed.query or parsed.fragment:
        raise ValueError(
            f"{variable} must be s3://bucket/prefix only: credentials and the endpoint come "
            "from the AWS environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_PROFILE…)"
        )
    bucket = parsed.hostname or ""
    if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        raise ValueError(f"{variable} does not name a valid S3 bucket")
    segments = [segment for segment in parsed.path.split("/") if segment]
    if any(segment in (".", "..") for segment in segments):
        raise ValueError(f"{variable} has '.' or '..' in its prefix")
    prefix = "".join(f"{segment}/" for segment in segments)
    return bucket, prefix


def s3_error_code(error: ClientError | BotoCoreError) -> str:
    """The S3 error code ("AccessDenied", "412"…) or the exception's class name.

    Never the message: botocore messages can quote the request URL, which holds the key.
    """
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "")) or "ClientError"
    return type(error).__name__


def call_s3(error_type: type[Exception], what: str, operation: Callable[[], T]) -> T:
    """`operation()`, with S3 failures re-raised as `error_type("cannot <what>: <code>")`.

    Raised outside the handler, so the new error has no `__context__`: the original
    exception's text and traceback may hold the object key.
    """
    try:
        return operation()
    except (ClientError, BotoCoreError) as exc:
        code = s3_error_code(exc)
    raise error_type(f"cannot {what}: {code}")


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
        return sorted(code for code in codes if LA_CODE_PATTERN.fullmatch(code))

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
            raise DropObjectChanged(_changed_message(obj))
        if failure:
            raise DropError(f"cannot {what}: {failure}")
        if len(content) != obj.size:
            raise DropObjectChanged(_changed_message(obj))
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
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self._bucket,
            Prefix=prefix,
            Delimiter="/",
            PaginationConfig={"PageSize": self._page_size},
        )
        entries: list[Any] = []
        for page in pages:
            entries.extend(cast("list[Any]", dict(page).get(part, [])))
        return entries

    def _head_or_none(self, key: str) -> Any:
        try:
            return self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if s3_error_code(exc) in _NOT_FOUND_CODES:
                return None
            raise

    def _delete_listed_version(self, key: str, etag: str, version_id: str | None) -> None:
        try:
            if version_id and version_id != "null":
                self._client.delete_object(Bucket=self._bucket, Key=key, VersionId=version_id)
            else:
                self._client.delete_object(Bucket=self._bucket, Key=key, IfMatch=_quoted(etag))
        except ClientError as exc:
            if s3_error_code(exc) not in _PRECONDITION_CODES | _NOT_FOUND_CODES:
                raise

    def _inbox(self, la_code: str) -> str:
        return f"{self._prefix}{check_la_code(la_code)}/"

    def _object_key(self, obj: DropObject) -> str:
        if "/" in obj.name or obj.name in ("", ".", ".."):
            raise DropError(f"file {obj.fingerprint} of LA {obj.la_code} has an unusable name")
        return f"{self._inbox(obj.la_code)}{obj.name}"

    def _object(self, la_code: str, name: str, size: int, etag: str) -> DropObject:
        version = etag.strip('"')
        return DropObject(
            la_code=la_code,
            name=name,
            size=size,
            version=version,
            fingerprint=compute_fingerprint(self._key, la_code, name, size, version),
        )


def _quoted(etag: str) -> str:
    return f'"{etag}"'


def _changed_message(obj: DropObject) -> str:
    return f"file {obj.fingerprint} of LA {obj.la_code} changed after it was listed"


def open_s3_drop(url: str, fingerprint_key: TrialKey) -> S3Drop:
    """The drop named by `TRIAL_DROP_URL=s3://bucket/prefix` (for `ingest.drop.open_drop`)."""
    bucket, prefix = parse_s3_url(url, "TRIAL_DROP_URL")
    return S3Drop(bucket, prefix, fingerprint_key)
