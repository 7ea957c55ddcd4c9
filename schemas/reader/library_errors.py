"""What the reading libraries raise, kept from the caller.

Errors raised by zipfile, polars and calamine can quote the file, so they are caught and
replaced by an issue that names no value, never passed on.
"""

from __future__ import annotations

import lzma
import zipfile
import zlib

# What zipfile raises for broken, truncated or unsupported archives.
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    zipfile.LargeZipFile,
    NotImplementedError,
    RuntimeError,
    OSError,
    EOFError,
    ValueError,
)


def reraise_unless_library_error(error: BaseException) -> None:
    """Let interrupts through; swallow what polars or calamine raised, since it may quote data.

    A Rust panic reaches Python as pyo3's PanicException, a BaseException whose class is
    private to each extension module, hence the test by name.
    """
    if isinstance(error, Exception) or type(error).__name__ == "PanicException":
        return
    raise error
