"""The S3 landing store against moto's S3 API server on loopback: the local store's behaviour,
ciphertext only in the bucket, and deletion that leaves no version behind."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from servers import S3Bucket

from ingest.storage.landing import (
    LandedFile,
    LandingError,
    LandingIntegrityError,
    LandingKeyMismatch,
    content_hmac,
    submission_id_for,
)
from ingest.storage.landing.s3 import S3LandingStore, open_s3_landing
from ingest.storage.s3 import s3_client
from pseudonymise.keys import TrialKey
from pseudonymise.landing_crypto import decrypt_blob

KEY = TrialKey(b"L" * 32)
OTHER_KEY = TrialKey(b"M" * 32)
CANARY = b"person_id,first_name\nCANARY-ID-7731,Zebedee-Canary\n"
RECEIVED = datetime(2025, 3, 31, 14, 5, 6, tzinfo=UTC)


@pytest.fixture
def store(s3_bucket: S3Bucket) -> S3LandingStore:
    return open_s3_landing(s3_bucket.url("landing"), KEY)


def land(store: S3LandingStore, content: bytes = CANARY, la_code: str = "201") -> LandedFile:
    return store.put(submission_id_for(KEY, la_code, content), la_code, content, RECEIVED)


def _blob_key(landed: LandedFile) -> str:
    return f"landing/{landed.la_code}/{landed.submission_id}.bin"


def _sidecar_key(landed: LandedFile) -> str:
    return f"landing/{landed.la_code}/{landed.submission_id}.json"


# --- round trip --------------------------------------------------------------------------


def test_put_then_get_returns_the_content(store: S3LandingStore) -> None:
    landed = land(store)

    assert store.get("201", landed.submission_id) == CANARY
    assert store.info("201", landed.submission_id) == landed
    assert landed == LandedFile(
        la_code="201",
        submission_id=submission_id_for(KEY, "201", CANARY),
        content_hmac=content_hmac(KEY, "201", CANARY),
        size=len(CANARY),
        received_at=RECEIVED,
        key_id=KEY.key_id,
    )


def test_the_bucket_holds_the_services_ciphertext_only(
    s3_bucket: S3Bucket, store: S3LandingStore
) -> None:
    landed = land(store)

    assert s3_bucket.object_keys() == [_blob_key(landed), _sidecar_key(landed)]
    for key in s3_bucket.object_keys():
        stored = s3_bucket.get(key)
        assert b"CANARY-ID-7731" not in stored
        assert b"Zebedee" not in stored
    blob = s3_bucket.get(_blob_key(landed))
    associated_data = f"201/{landed.submission_id}".encode()
    assert decrypt_blob(KEY, blob, associated_data) == CANARY


def test_the_sidecar_is_small_json_without_a_file_name(
    s3_bucket: S3Bucket, store: S3LandingStore
) -> None:
    landed = land(store)

    sidecar = json.loads(s3_bucket.get(_sidecar_key(landed)))

    assert set(sidecar) == {
        "format",
        "la_code",
        "submission_id",
        "content_hmac",
        "size",
        "received_at",
        "key_id",
    }
    assert (sidecar["content_hmac"], sidecar["size"], sidecar["key_id"]) == (
        content_hmac(KEY, "201", CANARY),
        len(CANARY),
        KEY.key_id,
    )
    assert sidecar["received_at"] == "2025-03-31T14:05:06+00:00"


def test_server_side_encryption_is_requested_on_top_when_configured(
    s3_bucket: S3Bucket,
) -> None:
    store = open_s3_landing(s3_bucket.url("landing"), KEY, "AES256")
    landed = land(store)

    for key in (_blob_key(landed), _sidecar_key(landed)):
        head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key)
        assert head["ServerSideEncryption"] == "AES256"
    assert b"CANARY-ID-7731" not in s3_bucket.get(_blob_key(landed))
    assert store.get("201", landed.submission_id) == CANARY


def test_an_unknown_server_side_encryption_is_refused(s3_bucket: S3Bucket) -> None:
    with pytest.raises(ValueError, match="TRIAL_LANDING_S3_SSE"):
        open_s3_landing(s3_bucket.url("landing"), KEY, "yes")


def test_received_time_is_kept_in_utc(store: S3LandingStore) -> None:
    local = RECEIVED.astimezone(timezone(timedelta(hours=1)))

    landed = store.put(submission_id_for(KEY, "201", CANARY), "201", CANARY, local)

    assert landed.received_at == RECEIVED
    assert store.list()[0].received_at == RECEIVED


def test_put_is_idempotent(s3_bucket: S3Bucket, store: S3LandingStore) -> None:
    first = land(store)
    blob_before = s3_bucket.get(_blob_key(first))

    again = store.put(first.submission_id, "201", CANARY, RECEIVED + timedelta(days=1))

    assert again == first  # the first receipt is kept
    assert s3_bucket.get(_blob_key(first)) == blob_before


def test_put_refuses_an_id_that_is_not_the_contents(store: S3LandingStore) -> None:
    with pytest.raises(LandingError, match="not the id of this content"):
        store.put(submission_id_for(KEY, "201", b"other"), "201", CANARY, RECEIVED)


def test_a_landed_sidecar_whose_blob_is_gone_is_reported_damaged(
    s3_bucket: S3Bucket, store: S3LandingStore
) -> None:
    landed = land(store)
    s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key=_blob_key(landed))

    with pytest.raises(LandingIntegrityError, match="damaged"):
        land(store)
    with pytest.raises(LandingIntegrityError, match="fails to decrypt"):
        store.get("201", landed.submission_id)


# --- integrity and keys --------------------------------------------------------------------


def test_a_tampered_blob_is_detected(s3_bucket: S3Bucket, store: S3LandingStore) -> None:
    landed = land(store)
    data = bytearray(s3_bucket.get(_blob_key(landed)))
    data[-5] ^= 0x01
    s3_bucket.put(_blob_key(landed), bytes(data))

    with pytest.raises(LandingIntegrityError, match="fails to decrypt") as raised:
        store.get("201", landed.submission_id)
    assert raised.value.__context__ is None


def test_a_blob_swapped_between_submissions_is_detected(
    s3_bucket: S3Bucket, store: S3LandingStore
) -> None:
    first = land(store)
    second = land(store, b"a different return")
    s3_bucket.put(_blob_key(second), s3_bucket.get(_blob_key(first)))

    with pytest.raises(LandingIntegrityError):
        store.get("201", second.submission_id)


def test_an_edited_sidecar_hash_is_detected(s3_bucket: S3Bucket, store: S3LandingStore) -> None:
    landed = land(store)
    sidecar = json.loads(s3_bucket.get(_sidecar_key(landed)))
    sidecar["content_hmac"] = "0" * 64
    s3_bucket.put(_sidecar_key(landed), json.dumps(sidecar).encode())

    with pytest.raises(LandingIntegrityError, match="HMAC"):
        store.get("201", landed.submission_id)


def test_a_corrupt_sidecar_is_an_integrity_error(
    s3_bucket: S3Bucket, store: S3LandingStore
) -> None:
    landed = land(store)
    s3_bucket.put(_sidecar_key(landed), b"{not json")

    with pytest.raises(LandingIntegrityError, match="sidecar"):
        store.get("201", landed.submission_id)


def test_another_key_is_refused(s3_bucket: S3Bucket, store: S3LandingStore) -> None:
    landed = land(store)
    other = open_s3_landing(s3_bucket.url("landing"), OTHER_KEY)

    with pytest.raises(LandingKeyMismatch, match=KEY.key_id):
        other.get("201", landed.submission_id)


def test_a_missing_submission_fails_clearly(store: S3LandingStore) -> None:
    with pytest.raises(LandingError, match="not landed"):
        store.get("201", submission_id_for(KEY, "201", b"never landed"))


@pytest.mark.parametrize("submission_id", ["../201-abc", "201-" + "g" * 24, "201"])
def test_malformed_submission_ids_are_refused(store: S3LandingStore, submission_id: str) -> None:
    with pytest.raises(ValueError, match="submission id"):
        store.get("201", submission_id)


# --- listing, deletion, retention -------------------------------------------------------------


def test_list_delete_and_older_than(s3_bucket: S3Bucket, store: S3LandingStore) -> None:
    old = store.put(
        submission_id_for(KEY, "201", b"old"), "201", b"old", RECEIVED - timedelta(days=400)
    )
    new = store.put(submission_id_for(KEY, "305", b"new"), "305", b"new", RECEIVED)
    s3_bucket.put("landing/201/not-a-submission.json", b"{}")
    s3_bucket.put("elsewhere/201/" + f"{old.submission_id}.json", b"{}")

    assert store.list() == [old, new]
    assert store.older_than(RECEIVED - timedelta(days=365)) == [old]

    store.delete("201", old.submission_id)
    store.delete("201", old.submission_id)  # deleting again is harmless

    assert store.list() == [new]
    assert _blob_key(old) not in s3_bucket.object_keys()


def test_a_blob_without_its_sidecar_is_not_landed(
    s3_bucket: S3Bucket, store: S3LandingStore
) -> None:
    landed = land(store)
    s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key=_sidecar_key(landed))

    assert store.list() == []


def test_listing_follows_every_page(s3_bucket: S3Bucket) -> None:
    """More than one page of keys (the server's page is 1000; ask for 2 at a time here)."""
    store = open_s3_landing(s3_bucket.url("landing"), KEY)
    contents = [f"return {number}".encode() for number in range(3)]
    for content in contents:
        land(store, content)
    calls: list[str] = []
    client = s3_client()

    def two_keys_a_page(params: dict[str, Any], **_: Any) -> None:
        params["MaxKeys"] = 2
        calls.append("list")

    client.meta.events.register("before-parameter-build.s3.ListObjectsV2", two_keys_a_page)
    paged = S3LandingStore(s3_bucket.name, "landing/", KEY, client=client)

    assert len(paged.list()) == 3
    assert len(calls) == 3  # 6 keys, 2 a page


def test_on_a_versioned_bucket_deletion_leaves_no_version_behind(
    s3_bucket: S3Bucket, store: S3LandingStore
) -> None:
    s3_bucket.client.put_bucket_versioning(
        Bucket=s3_bucket.name, VersioningConfiguration={"Status": "Enabled"}
    )
    landed = land(store)
    kept = land(store, b"kept")

    store.delete("201", landed.submission_id)

    versions = s3_bucket.client.list_object_versions(Bucket=s3_bucket.name, Prefix="landing/")
    remaining = {v["Key"] for v in versions.get("Versions", [])}
    assert remaining == {_blob_key(kept), _sidecar_key(kept)}
    assert versions.get("DeleteMarkers", []) == []


def test_older_than_needs_an_aware_cutoff(store: S3LandingStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        store.older_than(datetime(2025, 1, 1))


def test_an_unreachable_bucket_is_a_landing_error(s3_bucket: S3Bucket) -> None:
    store = open_s3_landing("s3://no-such-bucket-here/landing", KEY)

    with pytest.raises(LandingError, match="NoSuchBucket") as raised:
        land(store)
    assert raised.value.__context__ is None
