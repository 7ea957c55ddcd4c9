from typing_extensions import Buffer

def hmac_sha256_hex(
    key: Buffer, prefix: Buffer, offsets: Buffer, data: Buffer, hex_chars: int, /
) -> bytes: ...
