"""The keyed tokeniser: identifier values -> HMAC-SHA-256 pseudonyms.

A token is the lower-case hex of the first 128 bits of
``HMAC-SHA-256(key, token_message(kind, normalise_identifier(value), la_code))``. The message
binds the kind of identifier and, for LA-scoped kinds, the LA code, so a family ID equal to a
person ID, or the same local ID in two LAs, never give the same token; NHS numbers and UPNs
are not LA-scoped so a child known to two trial LAs links.

Speed over a column of identifiers (measured in docs/DECISIONS.md):

- Python's ``hmac`` (a pre-keyed object's ``.copy()``, or ``hmac.new``) costs a Python call
  and object per value;
- DuckDB in-engine ``sha256(opad || unhex(sha256(ipad || message)))`` (this module's previous
  column path) runs DuckDB's SHA-256, which is portable C, and HMAC from scratch needs four
  blocks a value;
- `hmacbatch` (``native/hmacbatch``, C over OpenSSL) computes the SHA-256 states after the
  ipad and opad blocks once per column, so a short value costs two compressions, and OpenSSL
  uses the CPU's SHA instructions. It reads the column's Arrow buffers directly: no Python
  object per value.

So whole columns go through `hmacbatch`, and single values (and the reference path the tests
pick with ``native=False``) through Python's ``hmac``. Both are property-tested to equal
``hmac.new(key, msg, hashlib.sha256).hexdigest()[:32]`` byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum

import polars as pl
import pyarrow as pa
from hmacbatch import hmac_sha256_hex

from pseudonymise.identifiers import normalise_identifier, normalise_identifier_series
from pseudonymise.keys import TrialKey
from pseudonymise.la_code import is_la_code

TOKEN_HEX_CHARS = 32  # 128 bits
_OFFSET_BYTES = 8  # Arrow large-string offsets are int64


class IdentifierKind(StrEnum):
    """What an identifier identifies; part of every token's message."""

    PERSON = "person"
    FAMILY = "family"
    KEYWORKER = "keyworker"
    EPISODE = "episode"
    CSC_EVENT = "csc_event"
    ACTIVITY = "activity"
    RESPONSE = "response"
    NHS_NUMBER = "nhs_number"
    UPN = "upn"


LA_SCOPED_KINDS: frozenset[IdentifierKind] = frozenset(IdentifierKind) - {
    IdentifierKind.NHS_NUMBER,
    IdentifierKind.UPN,
}
_KINDS = {kind.value: kind for kind in IdentifierKind}


def _message_prefix(kind: IdentifierKind | str, la_code: str | None) -> bytes:
    """Everything in the HMAC message before the value; checks kind and LA code agree."""
    known = _KINDS.get(kind) if isinstance(kind, str) else None
    if known is None:
        raise ValueError("unknown identifier kind")
    if known in LA_SCOPED_KINDS:
        if not isinstance(la_code, str) or not is_la_code(la_code):
            raise ValueError(f"{known.value} tokens are LA-scoped: la_code must be 3 digits")
        return b"v1|" + known.value.encode() + b"|" + la_code.encode() + b"|"
    if la_code is not None:
        raise ValueError(f"{known.value} tokens are not LA-scoped: la_code must be None")
    return b"v1|" + known.value.encode() + b"||"


def _utf8(value: str) -> bytes:
    """UTF-8 bytes of a value; a lone surrogate is refused without echoing the value."""
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        pass
    raise ValueError("identifier value is not valid Unicode text")


def token_message(kind: IdentifierKind | str, normalised_value: str, la_code: str | None) -> bytes:
    """The exact bytes that are HMAC'd for one identifier.

    ``v1|<kind>|<la_code>|<value>`` for LA-scoped kinds, ``v1|<kind>||<value>`` for NHS
    numbers and UPNs. The value must already be normalised and non-empty: an empty value
    would give every blank cell one shared token.
    """
    prefix = _message_prefix(kind, la_code)
    if not normalised_value or normalise_identifier(normalised_value) != normalised_value:
        raise ValueError("identifier value must be non-empty and already normalised")
    return prefix + _utf8(normalised_value)


def _text_column(values: pl.Series) -> pl.Series:
    """The column as text; numbers are refused, since casting would have lost leading zeros."""
    if values.dtype == pl.Null or isinstance(values.dtype, pl.Categorical | pl.Enum):
        return values.cast(pl.String)
    if values.dtype != pl.String:
        raise TypeError(f"identifiers must be read as text, not {values.dtype}")
    return values


def _arrow_text(column: pl.Series) -> tuple[pa.Buffer, pa.Buffer]:
    """The column's Arrow large-string offsets (exactly n + 1 of them) and data buffers."""
    array = column.to_arrow(compat_level=pl.CompatLevel.oldest())
    if array.type != pa.large_string():
        array = array.cast(pa.large_string())
    _validity, offsets, data = array.buffers()
    if offsets is None or data is None:  # Arrow lets an array with no text leave them out
        return pa.py_buffer(bytes(_OFFSET_BYTES * (len(array) + 1))), pa.py_buffer(b"")
    return offsets.slice(array.offset * _OFFSET_BYTES, (len(array) + 1) * _OFFSET_BYTES), data


def _fixed_width_strings(text: bytes, count: int, width: int) -> pl.Series:
    """`count` strings of `width` ASCII characters each, read straight from `text`."""
    offsets = pl.int_range(0, (count + 1) * width, width, dtype=pl.Int64, eager=True)
    array = pa.Array.from_buffers(
        pa.large_string(), count, [None, offsets.to_arrow().buffers()[1], pa.py_buffer(text)]
    )
    series = pl.Series(array)
    assert isinstance(series, pl.Series)
    return series


class Tokeniser:
    """Turns identifier columns into tokens under one `TrialKey`.

    Holds key material, so its repr shows only the key identifier. Safe to share between
    threads. `native=False` makes whole columns go through Python's `hmac` too: the
    reference the tests compare the native path with.
    """

    def __init__(self, key: TrialKey, *, native: bool = True) -> None:
        self._native = native
        self._secret = key.secret
        self._key_id = key.key_id

    def __repr__(self) -> str:
        return f"Tokeniser(key_id={self._key_id!r})"

    @property
    def key_id(self) -> str:
        """The key's public identifier, recorded with every stored row."""
        return self._key_id

    def tokenise_value(
        self, value: str, kind: IdentifierKind | str, la_code: str | None
    ) -> str | None:
        """The token for one value, or None when it is blank after normalising."""
        prefix = _message_prefix(kind, la_code)
        normalised = normalise_identifier(value)
        if not normalised:
            return None
        return self._python_token(hmac.new(self._secret, prefix, hashlib.sha256), normalised)

    def tokenise(
        self, values: pl.Series, kind: IdentifierKind | str, la_code: str | None
    ) -> pl.Series:
        """Tokens for a whole column (String, same name and length); null or blank -> null."""
        prefix = _message_prefix(kind, la_code)
        column = normalise_identifier_series(_text_column(values))
        if self._native:
            tokens = self._native_tokens(column, prefix)
        else:
            tokens = self._python_tokens(column, prefix)
        return tokens.rename(values.name)

    # --- Python path: exact by construction; single values, and the tests' reference ---

    @staticmethod
    def _python_token(keyed: hmac.HMAC, normalised: str) -> str:
        keyed.update(_utf8(normalised))
        return keyed.hexdigest()[:TOKEN_HEX_CHARS]

    def _python_tokens(self, column: pl.Series, prefix: bytes) -> pl.Series:
        """One pre-keyed HMAC copied per distinct value, joined back onto the rows."""
        keyed = hmac.new(self._secret, prefix, hashlib.sha256)
        distinct = column.drop_nulls().unique()
        tokens = [self._python_token(keyed.copy(), v) for v in distinct.to_list()]
        mapping = pl.DataFrame(
            {"v": distinct, "t": tokens}, schema={"v": pl.String, "t": pl.String}
        )
        joined = column.to_frame("v").join(mapping, on="v", how="left", maintain_order="left")
        return joined.get_column("t")

    # --- native path: `hmacbatch` hashes the Arrow buffers in C, GIL released ---

    def _native_tokens(self, column: pl.Series, prefix: bytes) -> pl.Series:
        """Every row hashed where it is (nulls too, then masked): no distinct/join pass."""
        offsets, data = _arrow_text(column)
        text = hmac_sha256_hex(self._secret, prefix, offsets, data, TOKEN_HEX_CHARS)
        tokens = _fixed_width_strings(text, column.len(), TOKEN_HEX_CHARS)
        if column.null_count():
            tokens = pl.select(pl.when(column.is_not_null()).then(tokens)).to_series()
        return tokens
