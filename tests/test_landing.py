"""The encrypted landing store: round trip, integrity, keys, sidecars and retention queries."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.storage.landing import (
    LandedFile,
    Landing,
    LandingError,
    LandingIntegrityError,
    LandingKeyMismatch,
    LandingStore,
    content_hmac,
    open_landing,
    submission_id_for,
)
from pseudonymise.keys import TrialKey
from pseudonymise.landing_crypto import encrypt_blob

KEY = TrialKey(b"L" * 32)
OTHER_KEY = TrialKey(b"M" * 32)
CANARY = b"person_id,first_name\nCANARY-ID-7731,Zebedee-Canary\n"
RECEIVED = datetime(2025, 3, 31, 14, 5, 6, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> LandingStore:
    return LandingStore(tmp_path / "landing", KEY)


def land(store: LandingStore, content: bytes = CANARY, la_code: str = "201") -> LandedFile:
    return store.put(submission_id_for(KEY, la_code, content), la_code, content, RECEIVED)


def every_file(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# --- submission ids ---


def test_submission_id_is_la_and_keyed_hmac_of_the_content() -> None:
    digest = content_hmac(KEY, "201", CANARY)

    assert submission_id_for(KEY, "201", CANARY) == f"201-{digest[:24]}"


@given(content=st.binary(max_size=200))
def test_id_and_hmac_are_neither_the_plain_sha256_nor_its_prefix(content: bytes) -> None:
    """A plain hash of a small file is its content (a one-row file was brute-forced)."""
    plain = hashlib.sha256(content).hexdigest()
    digest = content_hmac(KEY, "201", content)
    suffix = submission_id_for(KEY, "201", content).removeprefix("201-")

    assert digest != plain
    assert not plain.startswith(suffix)
    assert digest != hashlib.sha256(b"201|" + content).hexdigest()
    assert content_hmac(OTHER_KEY, "201", content) != digest
    assert submission_id_for(OTHER_KEY, "201", content) != submission_id_for(KEY, "201", content)


@given(content=st.binary(max_size=200), other=st.binary(max_size=200))
def test_submission_id_depends_only_on_la_and_content(content: bytes, other: bytes) -> None:
    assert re.fullmatch(r"201-[0-9a-f]{24}", submission_id_for(KEY, "201", content))
    assert (submission_id_for(KEY, "201", content) == submission_id_for(KEY, "201", other)) is (
        content == other
    )
    assert submission_id_for(KEY, "201", content) != submission_id_for(KEY, "305", content)


# --- round trip ---


def test_put_then_get_returns_the_content(store: LandingStore) -> None:
    landed = land(store)

    assert store.get("201", landed.submission_id) == CANARY
    assert landed == LandedFile(
        la_code="201",
        submission_id=submission_id_for(KEY, "201", CANARY),
        content_hmac=content_hmac(KEY, "201", CANARY),
        size=len(CANARY),
        received_at=RECEIVED,
        key_id=KEY.key_id,
    )


def test_received_time_is_kept_in_utc(store: LandingStore) -> None:
    local = RECEIVED.astimezone(timezone(timedelta(hours=1)))

    landed = store.put(submission_id_for(KEY, "201", CANARY), "201", CANARY, local)

    assert landed.received_at == RECEIVED
    assert landed.received_at.utcoffset() == timedelta(0)
    assert store.list()[0].received_at.tzinfo is not None


def test_naive_received_time_is_refused(store: LandingStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        store.put(submission_id_for(KEY, "201", CANARY), "201", CANARY, datetime(2025, 1, 1))


def test_store_holds_ciphertext_only(store: LandingStore) -> None:
    land(store)

    for path in every_file(store.root):
        data = path.read_bytes()
        assert b"CANARY-ID-7731" not in data
        assert b"Zebedee" not in data


def test_files_are_readable_by_the_service_only(store: LandingStore) -> None:
    land(store)

    files = every_file(store.root)
    assert [p.suffix for p in files] == [".bin", ".json"]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((store.root / "201").stat().st_mode) & 0o077 == 0


def test_sidecar_records_hash_size_time_and_key_but_no_file_name(store: LandingStore) -> None:
    landed = land(store)

    sidecar = json.loads((store.root / "201" / f"{landed.submission_id}.json").read_text())

    assert set(sidecar) == {
        "format",
        "la_code",
        "submission_id",
        "content_hmac",
        "size",
        "received_at",
        "key_id",
    }
    assert sidecar["content_hmac"] == content_hmac(KEY, "201", CANARY)
    assert hashlib.sha256(CANARY).hexdigest() not in json.dumps(sidecar)
    assert sidecar["size"] == len(CANARY)
    assert sidecar["received_at"] == "2025-03-31T14:05:06+00:00"
    assert sidecar["key_id"] == KEY.key_id


def test_put_is_idempotent(store: LandingStore) -> None:
    first = land(store)
    blob = store.root / "201" / f"{first.submission_id}.bin"
    before = (blob.read_bytes(), blob.stat().st_mtime_ns)

    again = store.put(first.submission_id, "201", CANARY, RECEIVED + timedelta(days=1))

    assert again == first  # the first receipt is kept
    assert (blob.read_bytes(), blob.stat().st_mtime_ns) == before
    assert len(every_file(store.root)) == 2


def test_put_refuses_an_id_that_is_not_the_contents(store: LandingStore) -> None:
    with pytest.raises(LandingError, match="not the id of this content"):
        store.put(submission_id_for(KEY, "201", b"other"), "201", CANARY, RECEIVED)


def test_put_refuses_an_id_of_another_la(store: LandingStore) -> None:
    with pytest.raises(ValueError, match="same LA"):
        store.put(submission_id_for(KEY, "305", CANARY), "201", CANARY, RECEIVED)


def test_no_temporary_files_are_left(store: LandingStore) -> None:
    land(store)
    land(store, b"another file")

    assert not [p for p in every_file(store.root) if p.name.startswith(".")]


# --- integrity and keys ---


def test_tampered_blob_is_detected(store: LandingStore) -> None:
    landed = land(store)
    blob = store.root / "201" / f"{landed.submission_id}.bin"
    data = bytearray(blob.read_bytes())
    data[-5] ^= 0x01
    blob.write_bytes(bytes(data))

    with pytest.raises(LandingIntegrityError, match="fails to decrypt") as raised:
        store.get("201", landed.submission_id)

    assert raised.value.__context__ is None


def test_blob_swapped_between_submissions_is_detected(store: LandingStore) -> None:
    first = land(store)
    second = land(store, b"a different return")
    folder = store.root / "201"
    (folder / f"{second.submission_id}.bin").write_bytes(
        (folder / f"{first.submission_id}.bin").read_bytes()
    )

    with pytest.raises(LandingIntegrityError):
        store.get("201", second.submission_id)


def test_sidecar_hash_edited_is_detected(store: LandingStore) -> None:
    landed = land(store)
    path = store.root / "201" / f"{landed.submission_id}.json"
    sidecar = json.loads(path.read_text())
    sidecar["content_hmac"] = "0" * 64
    path.write_text(json.dumps(sidecar))

    with pytest.raises(LandingIntegrityError, match="HMAC"):
        store.get("201", landed.submission_id)


def test_corrupt_sidecar_is_an_integrity_error(store: LandingStore) -> None:
    landed = land(store)
    (store.root / "201" / f"{landed.submission_id}.json").write_text("{not json")

    with pytest.raises(LandingIntegrityError, match="sidecar"):
        store.get("201", landed.submission_id)


def test_wrong_key_is_refused(store: LandingStore) -> None:
    landed = land(store)
    other = LandingStore(store.root, OTHER_KEY)

    with pytest.raises(LandingKeyMismatch, match=KEY.key_id):
        other.get("201", landed.submission_id)


def test_wrong_key_is_refused_even_if_the_sidecar_lies(store: LandingStore) -> None:
    landed = land(store)
    path = store.root / "201" / f"{landed.submission_id}.json"
    sidecar = json.loads(path.read_text())
    sidecar["key_id"] = OTHER_KEY.key_id
    path.write_text(json.dumps(sidecar))

    with pytest.raises(LandingIntegrityError):
        LandingStore(store.root, OTHER_KEY).get("201", landed.submission_id)


def test_getting_a_missing_submission_fails_clearly(store: LandingStore) -> None:
    with pytest.raises(LandingError, match="not landed"):
        store.get("201", submission_id_for(KEY, "201", b"never landed"))


@pytest.mark.parametrize("submission_id", ["../201-abc", "201-" + "g" * 24, "201"])
def test_malformed_submission_ids_are_refused(store: LandingStore, submission_id: str) -> None:
    with pytest.raises(ValueError, match="submission id"):
        store.get("201", submission_id)


# --- listing, deletion, retention ---


def test_list_delete_and_older_than(store: LandingStore) -> None:
    old = store.put(
        submission_id_for(KEY, "201", b"old"), "201", b"old", RECEIVED - timedelta(days=400)
    )
    new = store.put(submission_id_for(KEY, "305", b"new"), "305", b"new", RECEIVED)

    assert {f.submission_id for f in store.list()} == {old.submission_id, new.submission_id}
    assert store.older_than(RECEIVED - timedelta(days=365)) == [old]

    store.delete("201", old.submission_id)
    store.delete("201", old.submission_id)  # deleting again is harmless

    assert store.list() == [new]
    assert not (store.root / "201" / f"{old.submission_id}.bin").exists()


def test_blob_without_sidecar_does_not_count_as_landed(store: LandingStore) -> None:
    landed = land(store)
    os.unlink(store.root / "201" / f"{landed.submission_id}.json")

    assert store.list() == []


def test_list_of_an_empty_store(tmp_path: Path) -> None:
    assert LandingStore(tmp_path / "nothing-yet", KEY).list() == []


def test_older_than_needs_an_aware_cutoff(store: LandingStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        store.older_than(datetime(2025, 1, 1))


# --- opening by URL ---


def test_open_landing_from_a_path_or_file_url(tmp_path: Path) -> None:
    opened: Landing = open_landing(str(tmp_path), KEY)  # mypy: the store meets the protocol

    assert isinstance(opened, LandingStore) and opened.root == tmp_path
    assert open_landing(tmp_path.as_uri(), KEY).root == tmp_path


def test_open_landing_on_s3_opens_the_s3_store(monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest.storage.landing.s3 import S3LandingStore

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # a client is made, nothing is sent

    store = open_landing("s3://trial-landing/raw", KEY, "AES256")

    assert isinstance(store, S3LandingStore)
    assert (store.bucket, store.prefix) == ("trial-landing", "raw/")


def test_open_landing_refuses_other_schemes() -> None:
    with pytest.raises(ValueError, match="unsupported scheme 'ftp'"):
        open_landing("ftp://host/landing", KEY)


# --- files landed before ids were keyed ---


def land_legacy(
    store: LandingStore,
    content: bytes = CANARY,
    la_code: str = "201",
    key: TrialKey = KEY,
    received_at: datetime = RECEIVED,
) -> str:
    """Land `content` as the service did before ids were keyed: the id a prefix of the plain
    SHA-256, a format 1 sidecar recording it."""
    digest = hashlib.sha256(content).hexdigest()
    submission_id = f"{la_code}-{digest[:24]}"
    folder = store.root / la_code
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    aad = f"{la_code}/{submission_id}".encode()
    (folder / f"{submission_id}.bin").write_bytes(encrypt_blob(key, content, aad))
    sidecar = {
        "format": 1,
        "la_code": la_code,
        "submission_id": submission_id,
        "sha256": digest,
        "size": len(content),
        "received_at": received_at.isoformat(),
        "key_id": key.key_id,
    }
    (folder / f"{submission_id}.json").write_text(json.dumps(sidecar))
    return submission_id


def test_a_file_landed_before_ids_were_keyed_is_still_read_and_checked(
    store: LandingStore,
) -> None:
    legacy_id = land_legacy(store)

    assert store.get("201", legacy_id) == CANARY
    (listed,) = store.list()
    assert (listed.submission_id, listed.content_hmac, listed.received_at) == (
        legacy_id,
        None,
        RECEIVED,
    )
    sidecar_path = store.root / "201" / f"{legacy_id}.json"
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["sha256"] = "0" * 64
    sidecar_path.write_text(json.dumps(sidecar))
    with pytest.raises(LandingIntegrityError, match="HMAC"):
        store.get("201", legacy_id)
