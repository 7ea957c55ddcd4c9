"""The S3 drop against moto's S3 API server on loopback (a real HTTP endpoint, not a mock)."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import boto3
import pytest
from botocore.config import Config
from hypothesis import given
from hypothesis import strategies as st
from servers import S3Bucket, free_port

from ingest.storage.drop import DropError, DropObject, DropObjectChanged, compute_fingerprint
from ingest.storage.drop.s3 import S3Drop, open_s3_drop
from ingest.storage.s3 import parse_s3_url
from pseudonymise.keys import TrialKey

# A file name an LA might choose, which must never appear in an error or a log.
CANARY_NAME = "Smith_Jane_1985-03-14_9434765919.csv"


@pytest.fixture
def key() -> TrialKey:
    return TrialKey(secrets.token_bytes(32))


@pytest.fixture
def drop(s3_bucket: S3Bucket, key: TrialKey) -> S3Drop:
    return open_s3_drop(s3_bucket.url("drop"), key)


def _names(objects: list[DropObject]) -> list[str]:
    return sorted(obj.name for obj in objects)


def _only(objects: list[DropObject]) -> DropObject:
    assert len(objects) == 1
    return objects[0]


def _count_calls(drop: S3Drop, operation: str) -> list[str]:
    calls: list[str] = []

    def record(**_: Any) -> None:
        calls.append(operation)

    drop.client.meta.events.register(f"before-call.s3.{operation}", record)
    return calls


# --- listing ---------------------------------------------------------------------------


def test_the_inbox_lists_delivered_files_directly_under_the_la_prefix(
    s3_bucket: S3Bucket, drop: S3Drop
) -> None:
    etag = s3_bucket.put("drop/901/people.csv", b"a,b\n1,2\n")
    s3_bucket.put("drop/901/Services.XLSX", b"xlsx")
    for ignored in (
        "drop/901/reports/people-report.txt",  # the LA's reports
        "drop/901/archive/old.csv",  # any sub-prefix
        "drop/901/.hidden.csv",
        "drop/901/~$people.xlsx",
        "drop/901/upload.csv.part",
        "drop/901/",  # a folder marker written by some consoles
        "drop/902/other-la.csv",
        "elsewhere/901/outside-the-prefix.csv",
    ):
        s3_bucket.put(ignored, b"x")

    listed = drop.list_inbox("901")

    assert _names(listed) == ["Services.XLSX", "people.csv"]
    people = next(obj for obj in listed if obj.name == "people.csv")
    assert (people.la_code, people.size, people.version) == ("901", 8, etag)
    assert [obj.fingerprint for obj in listed] == sorted(obj.fingerprint for obj in listed)


def test_an_la_without_objects_has_an_empty_inbox(drop: S3Drop) -> None:
    assert drop.list_inbox("903") == []


def test_la_codes_are_the_three_digit_prefixes_under_the_drop(
    s3_bucket: S3Bucket, drop: S3Drop
) -> None:
    for key in (
        "drop/901/a.csv",
        "drop/902/reports/r.txt",
        "drop/9010/a.csv",
        "drop/abc/a.csv",
        "drop/904.csv",
        "other/905/a.csv",
    ):
        s3_bucket.put(key, b"x")

    assert drop.la_codes_present() == ["901", "902"]


def test_a_drop_without_a_prefix_uses_the_top_of_the_bucket(
    s3_bucket: S3Bucket, key: TrialKey
) -> None:
    s3_bucket.put("901/people.csv", b"x")
    drop = open_s3_drop(s3_bucket.url(), key)

    assert drop.la_codes_present() == ["901"]
    assert _names(drop.list_inbox("901")) == ["people.csv"]


def test_listing_follows_every_page(s3_bucket: S3Bucket, key: TrialKey) -> None:
    names = [f"file-{number:02}.csv" for number in range(11)]
    for name in names:
        s3_bucket.put(f"drop/901/{name}", b"x")
    for la_code in ("902", "903", "904", "905"):
        s3_bucket.put(f"drop/{la_code}/a.csv", b"x")
    bucket, prefix = parse_s3_url(s3_bucket.url("drop"), "TRIAL_DROP_URL")
    drop = S3Drop(bucket, prefix, key, page_size=3)
    list_calls = _count_calls(drop, "ListObjectsV2")

    assert _names(drop.list_inbox("901")) == names
    assert len(list_calls) == 4  # 11 objects, 3 a page

    assert drop.la_codes_present() == ["901", "902", "903", "904", "905"]
    assert len(list_calls) == 4 + 2  # 5 common prefixes, 3 a page


def test_the_fingerprint_is_the_shared_keyed_one(
    s3_bucket: S3Bucket, drop: S3Drop, key: TrialKey
) -> None:
    s3_bucket.put("drop/901/people.csv", b"content")
    obj = _only(drop.list_inbox("901"))

    expected = compute_fingerprint(key, "901", "people.csv", obj.size, obj.version)
    assert obj.fingerprint == drop.fingerprint(obj) == expected
    assert "people" not in repr(obj)


# --- change detection, reading ------------------------------------------------------------


def test_a_corrected_upload_under_the_same_key_is_a_new_object(
    s3_bucket: S3Bucket, drop: S3Drop
) -> None:
    s3_bucket.put("drop/901/people.csv", b"first version")
    first = _only(drop.list_inbox("901"))
    s3_bucket.put("drop/901/people.csv", b"same size!!!!")  # same size, other content
    second = _only(drop.list_inbox("901"))

    assert first.size == second.size
    assert first.version != second.version
    assert first.fingerprint != second.fingerprint


def test_reading_returns_the_listed_bytes(s3_bucket: S3Bucket, drop: S3Drop) -> None:
    s3_bucket.put("drop/901/people.csv", b"a,b\n1,2\n")

    assert drop.read(_only(drop.list_inbox("901"))) == b"a,b\n1,2\n"


def test_reading_a_replaced_object_refuses_rather_than_return_the_new_bytes(
    s3_bucket: S3Bucket, drop: S3Drop
) -> None:
    s3_bucket.put(f"drop/901/{CANARY_NAME}", b"listed")
    listed = _only(drop.list_inbox("901"))
    s3_bucket.put(f"drop/901/{CANARY_NAME}", b"replaced after listing")

    with pytest.raises(DropObjectChanged) as raised:
        drop.read(listed)
    assert listed.fingerprint in str(raised.value)
    _assert_no_name_in(raised.value)


def test_reading_a_vanished_object_names_the_fingerprint_not_the_file(
    s3_bucket: S3Bucket, drop: S3Drop
) -> None:
    s3_bucket.put(f"drop/901/{CANARY_NAME}", b"x")
    listed = _only(drop.list_inbox("901"))
    s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key=f"drop/901/{CANARY_NAME}")

    with pytest.raises(DropError) as raised:
        drop.read(listed)
    assert "LA 901" in str(raised.value)
    _assert_no_name_in(raised.value)


def test_no_object_key_reaches_the_logs_even_at_debug(
    s3_bucket: S3Bucket, drop: S3Drop, caplog: pytest.LogCaptureFixture
) -> None:
    s3_bucket.put(f"drop/901/{CANARY_NAME}", b"x")
    caplog.set_level(logging.DEBUG)

    obj = _only(drop.list_inbox("901"))
    drop.read(obj)
    drop.remove(obj)

    assert CANARY_NAME not in caplog.text
    assert "9434765919" not in caplog.text


# --- removal ---------------------------------------------------------------------------


def test_removing_deletes_the_listed_object(s3_bucket: S3Bucket, drop: S3Drop) -> None:
    s3_bucket.put("drop/901/people.csv", b"x")
    s3_bucket.put("drop/901/services.csv", b"y")
    people = next(obj for obj in drop.list_inbox("901") if obj.name == "people.csv")

    drop.remove(people)

    assert s3_bucket.object_keys("drop/") == ["drop/901/services.csv"]
    drop.remove(people)  # removing twice is harmless


def test_removing_keeps_a_replacement_uploaded_after_listing(
    s3_bucket: S3Bucket, drop: S3Drop
) -> None:
    s3_bucket.put("drop/901/people.csv", b"listed")
    listed = _only(drop.list_inbox("901"))
    s3_bucket.put("drop/901/people.csv", b"corrected")

    drop.remove(listed)

    assert s3_bucket.get("drop/901/people.csv") == b"corrected"


def test_the_delete_itself_is_conditional_on_the_listed_etag(
    s3_bucket: S3Bucket, drop: S3Drop
) -> None:
    """A replacement that lands between the ETag check and the DELETE is still kept."""
    s3_bucket.put("drop/901/people.csv", b"listed")
    listed = _only(drop.list_inbox("901"))

    def replace_just_before_the_delete(**_: Any) -> None:
        s3_bucket.put("drop/901/people.csv", b"corrected")

    drop.client.meta.events.register("before-call.s3.DeleteObject", replace_just_before_the_delete)
    drop.remove(listed)

    assert s3_bucket.get("drop/901/people.csv") == b"corrected"


def test_on_a_versioned_bucket_removal_leaves_no_copy_of_the_file(
    s3_bucket: S3Bucket, drop: S3Drop
) -> None:
    s3_bucket.client.put_bucket_versioning(
        Bucket=s3_bucket.name, VersioningConfiguration={"Status": "Enabled"}
    )
    s3_bucket.put("drop/901/people.csv", b"x")
    s3_bucket.put("drop/901/keep.csv", b"y")

    drop.remove(next(obj for obj in drop.list_inbox("901") if obj.name == "people.csv"))

    versions = s3_bucket.client.list_object_versions(Bucket=s3_bucket.name, Prefix="drop/")
    assert [v["Key"] for v in versions.get("Versions", [])] == ["drop/901/keep.csv"]
    assert versions.get("DeleteMarkers", []) == []


def test_on_a_versioned_bucket_removal_keeps_a_newer_upload(
    s3_bucket: S3Bucket, drop: S3Drop
) -> None:
    s3_bucket.client.put_bucket_versioning(
        Bucket=s3_bucket.name, VersioningConfiguration={"Status": "Enabled"}
    )
    s3_bucket.put("drop/901/people.csv", b"listed")
    listed = _only(drop.list_inbox("901"))
    s3_bucket.put("drop/901/people.csv", b"corrected")

    drop.remove(listed)

    assert s3_bucket.get("drop/901/people.csv") == b"corrected"


def test_failures_name_the_la_and_fingerprint_only(s3_bucket: S3Bucket, key: TrialKey) -> None:
    """An unreachable endpoint: botocore's own message would quote the URL, hence the key."""
    s3_bucket.put(f"drop/901/{CANARY_NAME}", b"x")
    listed = _only(open_s3_drop(s3_bucket.url("drop"), key).list_inbox("901"))
    unreachable = boto3.session.Session().client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )
    drop = S3Drop(s3_bucket.name, "drop/", key, client=unreachable)

    for action in (drop.read, drop.remove):
        with pytest.raises(DropError) as raised:
            action(listed)
        assert f"{listed.fingerprint} of LA 901: EndpointConnectionError" in str(raised.value)
        _assert_no_name_in(raised.value)


# --- reports ---------------------------------------------------------------------------


def test_reports_go_to_the_las_reports_prefix_and_are_not_listed(
    s3_bucket: S3Bucket, drop: S3Drop
) -> None:
    drop.write_report("901", "2025-01-31-a1b2c3-report.txt", b"accepted")

    assert s3_bucket.get("drop/901/reports/2025-01-31-a1b2c3-report.txt") == b"accepted"
    assert drop.list_inbox("901") == []
    assert drop.la_codes_present() == ["901"]


@pytest.mark.parametrize("name", ["../escape.txt", "a/b.txt", "", ".hidden"])
def test_a_report_name_must_be_a_plain_file_name(drop: S3Drop, name: str) -> None:
    with pytest.raises(ValueError):
        drop.write_report("901", name, b"x")


@pytest.mark.parametrize("la_code", ["90", "9011", "../901", "abc"])
def test_la_codes_are_checked_before_they_become_keys(drop: S3Drop, la_code: str) -> None:
    with pytest.raises(ValueError):
        drop.list_inbox(la_code)


# --- the URL ---------------------------------------------------------------------------


@given(
    st.lists(st.text(alphabet="abcdefghij0123456789-_", min_size=1, max_size=8), max_size=4),
    st.booleans(),
)
def test_a_prefix_is_normalised_to_segments_each_ending_in_a_slash(
    segments: list[str], trailing_slash: bool
) -> None:
    path = "/".join(segments) + ("/" if trailing_slash else "")
    bucket, prefix = parse_s3_url(f"s3://trial-drop/{path}", "TRIAL_DROP_URL")

    assert bucket == "trial-drop"
    assert prefix == "".join(f"{segment}/" for segment in segments)


@pytest.mark.parametrize(
    "url",
    [
        "https://bucket/prefix",
        "s3://",
        "s3://Bad_Bucket/x",
        "s3://key:secret@bucket/x",
        "s3://bucket:9000/x",
        "s3://bucket/x?versionId=1",
        "s3://bucket/a/../b",
    ],
)
def test_urls_that_are_not_a_bucket_and_prefix_are_refused(url: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_s3_url(url, "TRIAL_DROP_URL")
    assert "TRIAL_DROP_URL" in str(raised.value)
    assert "secret" not in str(raised.value)


def _assert_no_name_in(error: BaseException) -> None:
    """Neither the message nor anything chained to it mentions the file's name."""
    seen: BaseException | None = error
    while seen is not None:
        assert CANARY_NAME not in str(seen)
        assert "Smith" not in repr(seen.args)
        seen = seen.__cause__ or seen.__context__
    assert error.__cause__ is None
