"""Landing-store encryption: round trip, layout, and refusal of every wrong key, tampered
byte or wrong associated data, with nothing of the content in the errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pseudonymise.keys import TrialKey
from pseudonymise.landing_crypto import (
    HEADER_BYTES,
    NONCE_BYTES,
    TAG_BYTES,
    LandingDecryptError,
    blob_key_id,
    decrypt_blob,
    encrypt_blob,
)

KEY = TrialKey(bytes(range(32, 64)))
OTHER_KEY = TrialKey(bytes(range(64, 96)))
PLAINTEXT = b"person_id,first_name\nCANARY-0001,CANARYNAME\n"
AD = b"landing|201|submission-abc"


def _assert_clean(exc: LandingDecryptError) -> None:
    shown = str(exc) + repr(exc)
    for secret in (b"CANARY", AD, KEY.secret, OTHER_KEY.secret):
        assert secret.decode("latin-1") not in shown
        assert secret.hex() not in shown
    assert exc.__context__ is None
    assert exc.__cause__ is None


@settings(max_examples=50)
@given(st.binary(max_size=2000), st.binary(max_size=64))
def test_round_trip(plaintext: bytes, associated_data: bytes) -> None:
    blob = encrypt_blob(KEY, plaintext, associated_data)
    assert decrypt_blob(KEY, blob, associated_data) == plaintext


def test_layout() -> None:
    blob = encrypt_blob(KEY, PLAINTEXT, AD)
    assert blob[:4] == b"TIL1"
    assert blob[4:HEADER_BYTES] == KEY.key_id.encode("ascii")
    assert len(KEY.key_id) == 19
    assert len(blob) == HEADER_BYTES + NONCE_BYTES + len(PLAINTEXT) + TAG_BYTES
    assert b"CANARY" not in blob
    assert blob_key_id(blob) == KEY.key_id
    assert blob_key_id(b"TIL1short") is None
    assert blob_key_id(b"XXXX" + blob[4:]) is None


def test_fresh_nonce_every_time() -> None:
    blobs = {encrypt_blob(KEY, PLAINTEXT, AD) for _ in range(20)}
    assert len(blobs) == 20
    nonces = {b[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES] for b in blobs}
    assert len(nonces) == 20


def test_wrong_key_refused() -> None:
    blob = encrypt_blob(KEY, PLAINTEXT, AD)
    with pytest.raises(LandingDecryptError, match=OTHER_KEY.key_id) as info:
        decrypt_blob(OTHER_KEY, blob, AD)
    _assert_clean(info.value)
    # A blob relabelled with the other key's id still fails authentication.
    relabelled = b"TIL1" + OTHER_KEY.key_id.encode() + blob[HEADER_BYTES:]
    with pytest.raises(LandingDecryptError, match="authentication failed") as info:
        decrypt_blob(OTHER_KEY, relabelled, AD)
    _assert_clean(info.value)


def test_wrong_associated_data_refused() -> None:
    blob = encrypt_blob(KEY, PLAINTEXT, AD)
    for other in (b"", AD + b"x", AD[:-1], b"landing|202|submission-abc"):
        with pytest.raises(LandingDecryptError) as info:
            decrypt_blob(KEY, blob, other)
        _assert_clean(info.value)


@settings(max_examples=60)
@given(st.data())
def test_any_flipped_bit_refused(data: st.DataObject) -> None:
    blob = bytearray(encrypt_blob(KEY, PLAINTEXT, AD))
    position = data.draw(st.integers(0, len(blob) - 1))
    blob[position] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(LandingDecryptError) as info:
        decrypt_blob(KEY, bytes(blob), AD)
    _assert_clean(info.value)


@pytest.mark.parametrize("length", [0, 3, HEADER_BYTES, HEADER_BYTES + NONCE_BYTES + 15])
def test_truncated_refused(length: int) -> None:
    blob = encrypt_blob(KEY, PLAINTEXT, AD)[:length]
    with pytest.raises(LandingDecryptError) as info:
        decrypt_blob(KEY, blob, AD)
    _assert_clean(info.value)


def test_appended_bytes_refused() -> None:
    blob = encrypt_blob(KEY, PLAINTEXT, AD)
    with pytest.raises(LandingDecryptError) as info:
        decrypt_blob(KEY, blob + b"\x00", AD)
    _assert_clean(info.value)


def test_large_blob() -> None:
    plaintext = bytes(range(256)) * (32 * 1024 * 4)  # 32 MiB
    blob = encrypt_blob(KEY, plaintext, AD)
    assert decrypt_blob(KEY, blob, AD) == plaintext
