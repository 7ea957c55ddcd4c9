"""What the S3 drop and the S3 landing store share: the client, the URL, listing and errors.

The endpoint, region and credentials come from the standard AWS environment
(`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, an instance role…), so the same code
talks to AWS, to an S3-compatible store or to a test server.

Object keys can hold the LAs' file names, so no key, no botocore message (which can quote the
request URL) and no exception chain leaves the S3 modules: errors name the S3 error code only
(`s3_error_code`, `call_s3`). For the same reason botocore's and urllib3's DEBUG output, which
logs request URLs, is kept off unless someone sets those loggers' levels explicitly
(`quieten_url_logging`).
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

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")

S3_PAGE_SIZE = 1000  # the most S3 returns in one ListObjectsV2 page
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
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
    per process (creating a session loads botocore's models, slowly, each time); a session is
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


def list_entries(
    client: S3Client,
    bucket: str,
    prefix: str,
    part: str,
    *,
    delimiter: str | None = None,
    page_size: int | None = None,
) -> list[Any]:
    """Every ListObjectsV2 page's `part` ("Contents" or "CommonPrefixes") under `prefix`.

    With a `delimiter`, only what is directly under `prefix`; `page_size` asks for smaller
    pages than S3's default (the most, `S3_PAGE_SIZE`).
    """
    options: dict[str, Any] = {}
    if delimiter is not None:
        options["Delimiter"] = delimiter
    if page_size is not None:
        options["PaginationConfig"] = {"PageSize": page_size}
    paginator = client.get_paginator("list_objects_v2")
    entries: list[Any] = []
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, **options):
        entries.extend(cast("list[Any]", dict(page).get(part, [])))
    return entries
