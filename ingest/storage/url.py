"""The storage URLs (TRIAL_DROP_URL, TRIAL_LANDING_URL): their scheme and local folders.

Messages never repeat the URL: a URL may carry a password.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse


def url_scheme(url: str) -> str:
    """The URL's scheme in lower case, or '' for a plain folder path."""
    return urlparse(url).scheme.lower() if "://" in url else ""


def folder_path(url: str) -> Path | None:
    """The local folder named by a plain path or a `file://` URL; None for any other scheme."""
    scheme = url_scheme(url)
    if scheme == "":
        return Path(url).expanduser()
    if scheme == "file":
        return _file_url_path(url)
    return None


def _file_url_path(url: str) -> Path:
    """The local path of a `file:///path` URL (or `file://localhost/path`)."""
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise ValueError("a file:// URL must name a local path (file:///path)")
    return Path(unquote(parsed.path))
