"""HMAC-SHA-256 of many short messages under one key, in C over Arrow string buffers.

`hmac_sha256_hex(key, prefix, offsets, data, hex_chars)` returns, for each value ``i``
(``data[offsets[i]:offsets[i + 1]]``), the first `hex_chars` lower-case hex characters of
``HMAC-SHA-256(key, prefix + value)``, all concatenated. `offsets` is an Arrow large-string
offsets buffer (n + 1 native int64 values). The GIL is released while hashing.
"""

from hmacbatch._native import hmac_sha256_hex

__all__ = ["hmac_sha256_hex"]
