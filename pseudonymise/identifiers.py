"""Identifier normalisation and check algorithms: NHS number, UPN and UK postcode.

Each check has a scalar form (for the LA pre-flight checker, tests and single values) and a
polars expression form (for whole columns). The two must agree on every input, so the
expression forms are built from the same definitions and property-tested against the scalars.

Normalisation (spec, "Identifiers and pseudonymisation"): strip, upper-case, remove inner
white space, never cast to a number (``000123`` and ``123`` stay different). "White space" is
the Unicode ``White_Space`` property, spelled out below so that Python and polars' regex
engine use one identical set. Upper-casing is done by polars only for pure-ASCII values;
anything else goes through Python's ``str.upper`` so that differences between the Unicode
versions of Python and Rust can never make the two forms disagree.

UPN check letter, as published by the DfE and the government data standards catalogue
("Unique Pupil Number" v2.0, govtalk.gov.uk/gdsc, and the DfE "Unique Pupil Numbers (UPNs):
policy and practice guidance" formula, repeated in the school census validation rule 1510
guidance of MIS vendors):

- layout: check letter; LA number (3 digits); establishment number (4); last two digits of
  the academic year (2); serial (3 digits for a permanent UPN, or 2 digits and a letter for a
  temporary UPN). So characters 2-12 are digits and character 13 is a digit or a letter;
- letters use the 23-letter alphabet ``ABCDEFGHJKLMNPQRTUVWXYZ`` (no I, O or S) with values
  A=0 ... Z=22; digits have their own value;
- multiply the character at position n (n = 2 ... 13) by n, sum, take the remainder mod 23
  and map it back through the same alphabet: that letter must be character 1.

Worked by hand for ``B801200005001`` (python-stdnum's published valid example)::

    8x2 + 0x3 + 1x4 + 2x5 + 0x6 + 0x7 + 0x8 + 0x9 + 5x10 + 0x11 + 0x12 + 1x13
    = 16 + 4 + 10 + 50 + 13 = 93 = 4x23 + 1  ->  1 = "B"

(The census 1510 guidance's own example, ``B207000016049`` corrected to ``Q...``, has an
arithmetic slip: its weighted sum is 266, not 267, so the right check letter is ``P``.)

NHS number: 10 digits; weights 10 ... 2 on the first nine; check = 11 - (sum mod 11), where
11 becomes 0 and 10 means the number is invalid.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial

import polars as pl

# Unicode White_Space, identical in Python `re` and the Rust `regex` crate used by polars.
_WHITESPACE_CHARS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_WHITESPACE_RE = re.compile(f"[{_WHITESPACE_CHARS}]+")
_ASCII_WHITESPACE = "\t\n\x0b\x0c\r "
_ASCII_WHITESPACE_PATTERN = r"[\t\n\x0B\x0C\r ]+"
_ASCII_NEEDS_WORK_PATTERN = r"[a-z\t\n\x0B\x0C\r ]"  # lower case or white space

_NHS_RE = re.compile(r"[0-9]{10}")
_NHS_WEIGHTS = tuple(range(10, 1, -1))

UPN_ALPHABET = "ABCDEFGHJKLMNPQRTUVWXYZ"
_UPN_LETTER_VALUE = {letter: value for value, letter in enumerate(UPN_ALPHABET)}
_UPN_CHAR_VALUE = {**{str(d): d for d in range(10)}, **_UPN_LETTER_VALUE}
_UPN_PATTERN = f"[{UPN_ALPHABET}][0-9]{{11}}[0-9{UPN_ALPHABET}]"
_UPN_RE = re.compile(_UPN_PATTERN)

# Outward code A9, A99, A9A, AA9, AA99, AA9A, then inward 9AA; matched on the compact form
# (white space removed), which is unambiguous because the inward code is always 3 characters.
# Pseudo-postcodes such as ZZ99 3VZ fit the AA99 9AA shape, so their outward code is ZZ99.
_POSTCODE_PATTERN = r"([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})"
_POSTCODE_RE = re.compile(_POSTCODE_PATTERN)


# --- normalisation ---------------------------------------------------------------------


def normalise_identifier(value: str) -> str:
    """Strip, upper-case and remove inner white space, so that LA formatting habits
    (``" ab 12 "`` vs ``"AB12"``) do not split one person into two tokens.

    The value stays text: it is never cast to a number, so leading zeros are kept.
    """
    return _WHITESPACE_RE.sub("", value).upper()


def _normalise_non_ascii(values: pl.Series, normalised: pl.Series) -> pl.Series:
    """Redo the non-ASCII values of a column in Python, once per distinct value.

    Rare in practice, so the Python cost is paid only for the few rows that need it.
    """
    non_ascii = values.str.len_bytes() != values.str.len_chars()
    if not non_ascii.any():
        return normalised
    rows = non_ascii.arg_true()
    raw = values.gather(rows).to_list()
    cache = {value: normalise_identifier(value) for value in set(raw)}
    return normalised.scatter(rows, [cache[value] for value in raw])


def normalise_identifier_series(values: pl.Series) -> pl.Series:
    """`normalise_identifier` over a text column; null stays null, blank becomes null.

    Blank becomes null because an empty identifier is a missing one: tokenising it would link
    every blank row in the trial to every other. A clean column (upper-case, no white space:
    the usual case for IDs from a case-management system) is detected with one scan and
    passed through, which keeps normalising a small part of the cost of tokenising.
    """
    if values.dtype == pl.Null:
        values = values.cast(pl.String)
    normalised = values.clone()  # never modify the caller's Series in place (scatter)
    if values.str.contains(_ASCII_NEEDS_WORK_PATTERN).any():
        normalised = values.str.strip_chars(_ASCII_WHITESPACE)
        if normalised.str.contains(_ASCII_WHITESPACE_PATTERN).any():
            normalised = normalised.str.replace_all(_ASCII_WHITESPACE_PATTERN, "")
        normalised = normalised.str.to_uppercase()
    normalised = _normalise_non_ascii(values, normalised)
    blank = normalised.str.len_bytes() == 0
    if blank.any():
        normalised = normalised.scatter(blank.arg_true(), None)
    return normalised


def normalise_identifier_expr(expr: pl.Expr) -> pl.Expr:
    """`normalise_identifier_series` as an expression (null stays null, blank becomes null)."""
    return expr.map_batches(
        normalise_identifier_series, return_dtype=pl.String, is_elementwise=True
    )


Rule = Callable[[pl.DataFrame], pl.Series]
"""A check over a frame whose column ``n`` holds normalised text: True, False or null."""


def _check_series(values: pl.Series, rule: Rule) -> pl.Series:
    """Apply a check to a column: null in, null out; otherwise True or False.

    The rule gets the normalised text as a real column, and builds its intermediate columns
    in stages: polars does not share a repeated sub-expression built on a Python function,
    so referring to one several times inside a single expression would recompute it.
    """
    checked = rule(pl.DataFrame({"n": normalise_identifier_series(values)})).fill_null(False)
    return checked.zip_with(values.is_not_null(), checked.clear(n=checked.len())).alias(values.name)


def _check_expr(expr: pl.Expr, rule: Rule) -> pl.Expr:
    return expr.map_batches(
        partial(_check_series, rule=rule), return_dtype=pl.Boolean, is_elementwise=True
    )


def _digit(number: pl.Expr, position: int, width: int) -> pl.Expr:
    """The digit at `position` (0 = leftmost) of a `width`-digit number held as an integer."""
    return number.floordiv(10 ** (width - 1 - position)).mod(10)


# --- NHS number ------------------------------------------------------------------------


def nhs_check_digit(first_nine: str) -> int | None:
    """The modulus 11 check digit for nine digits, or None where none exists (remainder 10).

    Public so that the synthetic data generator makes valid numbers the same way.
    """
    total = sum(int(d) * w for d, w in zip(first_nine, _NHS_WEIGHTS, strict=True))
    check = (11 - total % 11) % 11
    return None if check == 10 else check


def nhs_number_is_valid(value: str) -> bool:
    """True when the value is 10 digits (white space allowed) with a correct check digit.

    Only valid numbers are tokenised: a mistyped number would otherwise link two children.
    """
    digits = normalise_identifier(value)
    if not _NHS_RE.fullmatch(digits):
        return False
    return nhs_check_digit(digits[:9]) == int(digits[9])


def _nhs_rule(frame: pl.DataFrame) -> pl.Series:
    """The modulus 11 check as integer arithmetic on the normalised text."""
    frame = frame.with_columns(shaped=pl.col("n").str.contains(f"^{_NHS_RE.pattern}$"))
    frame = frame.with_columns(
        number=pl.when("shaped").then(pl.col("n")).str.to_integer(strict=False)
    )
    number = pl.col("number")
    total = sum(_digit(number, i, 10) * w for i, w in enumerate(_NHS_WEIGHTS))
    expected = (11 - total % 11) % 11  # 10 can never equal a digit, so it fails as it should
    return frame.select(pl.col("shaped") & (expected == _digit(number, 9, 10))).to_series()


def nhs_number_valid_expr(expr: pl.Expr) -> pl.Expr:
    """`nhs_number_is_valid` over a column (null in, null out)."""
    return _check_expr(expr, _nhs_rule)


# --- UPN -------------------------------------------------------------------------------


def upn_check_letter(body: str) -> str:
    """The check letter for UPN characters 2-13 (12 characters; see the module docstring).

    Public so that the synthetic data generator makes valid UPNs the same way.
    """
    total = sum(_UPN_CHAR_VALUE[c] * n for n, c in enumerate(body, start=2))
    return UPN_ALPHABET[total % 23]


def upn_is_valid(value: str) -> bool:
    """True for a well-formed permanent or temporary UPN whose check letter is right."""
    upn = normalise_identifier(value)
    if not _UPN_RE.fullmatch(upn):
        return False
    return upn_check_letter(upn[1:]) == upn[0]


def _upn_rule(frame: pl.DataFrame) -> pl.Series:
    """The mod 23 check letter as expressions on the normalised text."""
    frame = frame.with_columns(shaped=pl.col("n").str.contains(f"^{_UPN_PATTERN}$"))
    upn = pl.when("shaped").then(pl.col("n"))
    frame = frame.with_columns(
        middle=upn.str.slice(1, 11).str.to_integer(strict=False),  # positions 2-12: digits
        last=upn.str.slice(12, 1).replace_strict(
            _UPN_CHAR_VALUE, default=None, return_dtype=pl.Int64
        ),
        check=upn.str.slice(0, 1).replace_strict(
            _UPN_LETTER_VALUE, default=None, return_dtype=pl.Int64
        ),
    )
    middle = pl.col("middle")
    total = sum(_digit(middle, i, 11) * (i + 2) for i in range(11)) + pl.col("last") * 13
    return frame.select(pl.col("shaped") & (total % 23 == pl.col("check"))).to_series()


def upn_valid_expr(expr: pl.Expr) -> pl.Expr:
    """`upn_is_valid` over a column (null in, null out)."""
    return _check_expr(expr, _upn_rule)


# --- postcodes -------------------------------------------------------------------------


def postcode_outward(value: str) -> str | None:
    """The outward code (postcode district) of a valid UK postcode, upper-case; else None.

    The district is all the trial keeps: the full postcode can identify a household.
    Pseudo-postcodes (``ZZ99 3VZ``: unknown or no fixed abode) give ``ZZ99``.
    """
    match = _POSTCODE_RE.fullmatch(normalise_identifier(value))
    return match.group(1) if match else None


def postcode_is_valid(value: str) -> bool:
    """True for a UK-format postcode (space optional, any case) or a ``ZZ99`` pseudo-postcode."""
    return postcode_outward(value) is not None


def _postcode_outward_series(values: pl.Series) -> pl.Series:
    """The inward code is always the last three characters of a valid compact postcode, so
    the outward code is the rest: a match without capture groups, then a slice (capture
    groups make the regex engine take a slower path)."""
    normalised = normalise_identifier_series(values)
    valid = normalised.str.contains(f"^{_POSTCODE_PATTERN}$")
    outward = normalised.str.head(-3)
    return outward.zip_with(valid.fill_null(False), outward.clear(n=outward.len()))


def postcode_outward_expr(expr: pl.Expr) -> pl.Expr:
    """`postcode_outward` over a column: the outward code, or null when invalid or missing."""
    return expr.map_batches(_postcode_outward_series, return_dtype=pl.String, is_elementwise=True)


def postcode_valid_expr(expr: pl.Expr) -> pl.Expr:
    """`postcode_is_valid` over a column (null in, null out)."""
    return pl.when(expr.is_not_null()).then(postcode_outward_expr(expr).is_not_null())
