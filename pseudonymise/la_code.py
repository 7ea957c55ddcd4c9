"""The LA code: a local authority's three-digit DfE number, the one form every module checks.

It names drop inboxes, landing folders and warehouse rows, and is part of token messages,
submission ids and storage paths, so it is checked the same way everywhere: exactly three ASCII
digits, nothing around them. `LA_CODE_PATTERN` is the regular expression's text, for composing
larger patterns (a submission id, a storage key).
"""

from __future__ import annotations

import re

LA_CODE_PATTERN = "[0-9]{3}"
_LA_CODE = re.compile(LA_CODE_PATTERN)


def is_la_code(text: str) -> bool:
    """Whether the whole of `text` is a three-digit LA code."""
    return _LA_CODE.fullmatch(text) is not None


def check_la_code(la_code: str) -> str:
    """`la_code` if it is a three-digit LA code (it becomes part of paths and keys), else a
    ValueError that does not repeat it."""
    if not is_la_code(la_code):
        raise ValueError("an LA code must be three digits")
    return la_code
