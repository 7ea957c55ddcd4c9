"""Authenticated encryption of raw LA files in the landing store, under the LANDING key.

Raw files are personal data: the spec keeps them encrypted at rest, with a key held apart from
the pseudonymisation key, for the retention period only. AES-256-GCM (one shot: quarterly
returns are at most a few hundred MB, well under AES-GCM's 2**31-byte limit per call here)
with a per-blob random 96-bit nonce, under a key derived from the TrialKey secret with
HKDF-SHA256 (``info=b"trial-ingest landing v1"``), so the same secret never serves two
algorithms.

Blob layout::

    b"TIL1" | key_id (19 ASCII bytes, "k1-" + 16 hex) | nonce (12 bytes) | ciphertext + tag

The key_id says which key to use after a rotation. The header (magic and key_id) is
authenticated too: it is prepended to the caller's associated data (it has a fixed length, so
the joined bytes are unambiguous). The associated data should name the blob (LA, submission),
so that a blob moved to another name fails to decrypt.
"""

from __future__ import annotations

import contextlib
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pseudonymise.keys import TrialKey

MAGIC = b"TIL1"
KEY_ID_BYTES = 19
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = len(MAGIC) + KEY_ID_BYTES
_HKDF_INFO = b"trial-ingest landing v1"
_KEY_ID_RE = re.compile(rb"k1-[0-9a-f]{16}")


class LandingDecryptError(Exception):
    """A blob could not be decrypted. Never carries content, keys or associated data."""


def _aead(key: TrialKey) -> AESGCM:
    """The AES-256-GCM cipher for a key: HKDF keeps it apart from the key's other uses."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        key.secret
    )
    return AESGCM(derived)


def _header(key: TrialKey) -> bytes:
    return MAGIC + key.key_id.encode("ascii")


def encrypt_blob(key: TrialKey, plaintext: bytes, associated_data: bytes) -> bytes:
    """Encrypt and authenticate `plaintext`, binding it to `associated_data`."""
    header = _header(key)
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = _aead(key).encrypt(nonce, plaintext, header + associated_data)
    return header + nonce + ciphertext


def blob_key_id(blob: bytes) -> str | None:
    """The key_id a blob says it was encrypted under, or None if it is not a landing blob.

    Lets a reprocessing job pick the right key after a rotation before trying to decrypt.
    """
    if len(blob) < HEADER_BYTES or not blob.startswith(MAGIC):
        return None
    key_id = blob[len(MAGIC) : HEADER_BYTES]
    return key_id.decode("ascii") if _KEY_ID_RE.fullmatch(key_id) else None


def decrypt_blob(key: TrialKey, blob: bytes, associated_data: bytes) -> bytes:
    """The plaintext of a blob made by `encrypt_blob` with the same key and associated data.

    Any other blob, key or associated data raises `LandingDecryptError`.
    """
    blob_key = blob_key_id(blob)
    if blob_key is None or len(blob) < HEADER_BYTES + NONCE_BYTES + TAG_BYTES:
        raise LandingDecryptError("not a landing-store blob (bad header or truncated)")
    if blob_key != key.key_id:
        raise LandingDecryptError(
            f"blob was encrypted under key {blob_key}, not the configured key {key.key_id}"
        )
    nonce = blob[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]
    plaintext: bytes | None = None
    # The failure is raised outside the handler so that no exception context is chained.
    with contextlib.suppress(InvalidTag):
        plaintext = _aead(key).decrypt(
            nonce, blob[HEADER_BYTES + NONCE_BYTES :], blob[:HEADER_BYTES] + associated_data
        )
    if plaintext is None:
        raise LandingDecryptError(
            "authentication failed: the blob or its associated data was altered, or the key is"
            " wrong"
        )
    return plaintext
