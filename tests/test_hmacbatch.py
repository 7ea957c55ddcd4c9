"""`hmacbatch`, the tokeniser's C HMAC: equal to Python's `hmac` for any key, prefix and
values, and refusing buffers that do not describe a string column without reading past them."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from hmacbatch import hmac_sha256_hex
from hypothesis import given, settings
from hypothesis import strategies as st


def _buffers(values: list[bytes]) -> tuple[bytes, bytes]:
    """Arrow large-string buffers (int64 offsets, data) for `values`."""
    offsets = [0]
    for value in values:
        offsets.append(offsets[-1] + len(value))
    return struct.pack(f"={len(offsets)}q", *offsets), b"".join(values)


@settings(max_examples=200, deadline=None)
@given(
    key=st.binary(max_size=150),  # past one SHA-256 block, where HMAC hashes the key first
    prefix=st.binary(max_size=80),
    values=st.lists(st.binary(max_size=130), max_size=20),
    hex_chars=st.integers(1, 64),
)
def test_equals_hmac_new(key: bytes, prefix: bytes, values: list[bytes], hex_chars: int) -> None:
    offsets, data = _buffers(values)
    text = hmac_sha256_hex(key, prefix, offsets, data, hex_chars)
    expected = "".join(
        hmac.new(key, prefix + value, hashlib.sha256).hexdigest()[:hex_chars] for value in values
    )
    assert text.decode("ascii") == expected


def test_offsets_may_start_inside_the_data() -> None:
    """A sliced Arrow array's offsets do not start at 0."""
    offsets = struct.pack("=3q", 2, 5, 5)
    text = hmac_sha256_hex(b"k", b"p", offsets, b"xxabcyy", 32)
    expected = [hmac.new(b"k", b"p" + v, hashlib.sha256).hexdigest()[:32] for v in (b"abc", b"")]
    assert text.decode() == "".join(expected)


@pytest.mark.parametrize(
    ("offsets", "data", "hex_chars"),
    [
        (struct.pack("=2q", 0, 4), b"abc", 32),  # past the end of the data
        (struct.pack("=3q", 0, 3, 1), b"abc", 32),  # going backwards
        (struct.pack("=2q", -1, 2), b"abc", 32),  # before the start
        (b"\0" * 12, b"abc", 32),  # not whole int64 values
        (b"", b"abc", 32),  # not even the first offset
        (struct.pack("=2q", 0, 3), b"abc", 0),
        (struct.pack("=2q", 0, 3), b"abc", 65),
    ],
)
def test_malformed_buffers_are_refused(offsets: bytes, data: bytes, hex_chars: int) -> None:
    with pytest.raises(ValueError) as info:
        hmac_sha256_hex(b"key", b"prefix", offsets, data, hex_chars)
    assert "abc" not in str(info.value)


def test_no_values_give_no_text() -> None:
    assert hmac_sha256_hex(b"k", b"", struct.pack("=q", 0), b"", 32) == b""
