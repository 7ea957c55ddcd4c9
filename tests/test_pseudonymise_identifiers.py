"""Identifier normalisation and check algorithms: published examples, properties, and the
vectorised forms agreeing with the scalar ones on every input."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pseudonymise.coarsen import month_start_expr, postcode_district_expr
from pseudonymise.identifiers import (
    UPN_ALPHABET,
    nhs_check_digit,
    nhs_number_is_valid,
    nhs_number_valid_expr,
    normalise_identifier,
    normalise_identifier_expr,
    normalise_identifier_series,
    postcode_is_valid,
    postcode_outward,
    postcode_outward_expr,
    postcode_valid_expr,
    upn_check_letter,
    upn_is_valid,
    upn_valid_expr,
)

# Text that exercises normalisation: Unicode white space, case mappings that change length
# (sharp s -> SS), characters that upper-case to ASCII (long s -> S, dotless i -> I, the ff
# ligature -> FF), non-BMP, NUL and separators.
TRICKY = st.sampled_from(
    [
        *(" ", "\t", "\n", "\x0b", "\x1f", "\xa0", "\u2003", "\u3000", "\u200b"),
        *("\xdf", "\u017f", "\u0131", "\ufb00", "\U0001f600", "\x00", "|", "'", '"', "\\"),
        *("a", "z", "0", "9", "\xe9", "\u03a3", "\u03c2", "\u01c5"),
    ]
)
TEXT = st.text(st.one_of(st.characters(codec="utf-8"), TRICKY), max_size=20)
NULLABLE_TEXT = st.lists(st.one_of(st.none(), TEXT), max_size=15)


def _run(expr_fn: Callable[[pl.Expr], pl.Expr], values: list[str | None]) -> list[object]:
    frame = pl.DataFrame({"v": values}, schema={"v": pl.String})
    return frame.select(expr_fn(pl.col("v"))).to_series().to_list()


def _spaced(text: str, data: st.DataObject) -> str:
    """The text with white space and case variations an LA system might add."""
    pieces = [data.draw(st.sampled_from(["", " ", "  ", "\t"])) + c for c in text]
    padded = "".join(pieces) + data.draw(st.sampled_from(["", " ", " \n"]))
    return padded.lower() if data.draw(st.booleans()) else padded


# --- normalisation ---------------------------------------------------------------------


def test_normalise_keeps_leading_zeros_and_removes_space() -> None:
    assert normalise_identifier(" 0001 23 ") == "000123"
    assert normalise_identifier("000123") != normalise_identifier("123")
    assert normalise_identifier(" ab\u3000c\td ") == "ABCD"


@given(TEXT)
def test_normalise_is_idempotent(value: str) -> None:
    once = normalise_identifier(value)
    assert normalise_identifier(once) == once


@settings(max_examples=150, deadline=None)
@given(NULLABLE_TEXT)
def test_normalise_expr_equals_scalar(values: list[str | None]) -> None:
    expected = [
        None if v is None or not normalise_identifier(v) else normalise_identifier(v)
        for v in values
    ]
    assert _run(normalise_identifier_expr, values) == expected


def test_normalise_expr_keeps_name_and_maps_blank_to_null() -> None:
    frame = pl.DataFrame({"person_id": [" a1 ", "  ", None, "ß x"]})
    out = frame.select(normalise_identifier_expr(pl.col("person_id")))
    assert out.columns == ["person_id"]
    assert out.to_series().to_list() == ["A1", None, None, "SSX"]


def test_normalise_series_leaves_its_input_alone() -> None:
    for values in (["A1", "", "\xe9"], ["a 1", "\u3000", None]):
        column = pl.Series("v", values, dtype=pl.String)
        normalise_identifier_series(column)
        assert column.to_list() == values


# --- NHS number ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "9434765919",  # widely published test number
        "943 476 5919",
        " 943 476 5919 ",
        "4010232137",
        "1111111111",  # the algorithm alone decides: repeated digits are not special-cased
    ],
)
def test_nhs_known_valid(value: str) -> None:
    assert nhs_number_is_valid(value)
    assert _run(nhs_number_valid_expr, [value]) == [True]


@pytest.mark.parametrize(
    "value",
    [
        "9434765918",  # wrong check digit
        "943476591",  # 9 digits
        "94347659190",  # 11 digits
        "943476591A",
        "943-476-5919",
        "٩٤٣٤٧٦٥٩١٩",  # Arabic-Indic digits: str.isdigit() would accept them
        "",
        "1000000010",  # check digit would be 10: no valid number starts 100000001
    ],
)
def test_nhs_known_invalid(value: str) -> None:
    assert not nhs_number_is_valid(value)
    assert _run(nhs_number_valid_expr, [value]) == [False]


nine_digits = st.text("0123456789", min_size=9, max_size=9)


@settings(max_examples=80, deadline=None)
@given(nine_digits, st.data())
def test_nhs_generated_valid_and_any_single_digit_change_invalid(
    first_nine: str, data: st.DataObject
) -> None:
    check = nhs_check_digit(first_nine)
    if check is None:
        assert not any(nhs_number_is_valid(first_nine + str(d)) for d in range(10))
        return
    number = first_nine + str(check)
    spaced = _spaced(number, data)
    assert nhs_number_is_valid(spaced)
    position = data.draw(st.integers(0, 9))
    digit = data.draw(st.sampled_from([d for d in "0123456789" if d != number[position]]))
    changed = number[:position] + digit + number[position + 1 :]
    assert not nhs_number_is_valid(changed)
    assert _run(nhs_number_valid_expr, [spaced, changed, None]) == [True, False, None]


NHS_LIKE = st.text(st.sampled_from("0123456789 \t"), max_size=14)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), TEXT, NHS_LIKE), max_size=15))
def test_nhs_expr_equals_scalar(values: list[str | None]) -> None:
    expected = [None if v is None else nhs_number_is_valid(v) for v in values]
    assert _run(nhs_number_valid_expr, values) == expected


# --- UPN -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "B801200005001",  # python-stdnum's published example; worked by hand in the module
        "b801200005001",  # lower case is normalised first
        " B801 2000 05001 ",
        "P207000016049",  # census rule 1510 guidance example, with its arithmetic corrected
        "M80120000500A",  # temporary UPN: 8x2+1x4+2x5+5x10+A(0)x13 = 80 = 3x23+11 -> M
    ],
)
def test_upn_known_valid(value: str) -> None:
    assert upn_is_valid(value)
    assert _run(upn_valid_expr, [value]) == [True]


@pytest.mark.parametrize(
    "value",
    [
        "A801200005001",  # wrong check letter
        "Q207000016049",  # the guidance's printed answer (its sum 267 should be 266)
        "B80120000500",  # 12 characters
        "B8012000050011",  # 14 characters
        "I801200005001",  # I, O and S are never check letters
        "O801200005001",
        "S801200005001",
        "M80120000500I",  # ... nor the last letter of a temporary UPN
        "X80120000A001",  # letter in the numeric part
        "8801200005001",  # no check letter
        "",
    ],
)
def test_upn_known_invalid(value: str) -> None:
    assert not upn_is_valid(value)
    assert _run(upn_valid_expr, [value]) == [False]


upn_bodies = st.builds(
    lambda digits, last: digits + last,
    st.text("0123456789", min_size=11, max_size=11),
    st.sampled_from("0123456789" + UPN_ALPHABET),
)


def _upn_character_value(character: str) -> int:
    return int(character) if character.isdigit() else UPN_ALPHABET.index(character)


@settings(max_examples=80, deadline=None)
@given(upn_bodies, st.data())
def test_upn_generated_valid_and_any_single_change_invalid(body: str, data: st.DataObject) -> None:
    upn = upn_check_letter(body) + body
    spaced = _spaced(upn, data)
    assert upn_is_valid(spaced)
    position = data.draw(st.integers(0, 12))
    alphabet = UPN_ALPHABET if position == 0 else "0123456789" if position < 12 else None
    choices = alphabet or "0123456789" + UPN_ALPHABET
    # The last character's letters count as digits do (A=0 ... H=7, J=8, K=9, L=10 ...), so
    # "H" for "7" there keeps the check letter: the algorithm cannot see that change.
    value = _upn_character_value(upn[position])
    replacement = data.draw(
        st.sampled_from([c for c in choices if _upn_character_value(c) != value])
    )
    changed = upn[:position] + replacement + upn[position + 1 :]
    assert not upn_is_valid(changed)
    assert _run(upn_valid_expr, [spaced, changed, None]) == [True, False, None]


UPN_LIKE = st.text(st.sampled_from("0123456789 " + UPN_ALPHABET + "IOSabc"), max_size=15)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), TEXT, UPN_LIKE, upn_bodies), max_size=15))
def test_upn_expr_equals_scalar(values: list[str | None]) -> None:
    expected = [None if v is None else upn_is_valid(v) for v in values]
    assert _run(upn_valid_expr, values) == expected


# --- postcodes and coarsening ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "outward"),
    [
        ("M1 1AE", "M1"),  # A9
        ("B33 8TH", "B33"),  # A99
        ("W1A 0AX", "W1A"),  # A9A
        ("CR2 6XH", "CR2"),  # AA9
        ("DN55 1PT", "DN55"),  # AA99
        ("EC1A 1BB", "EC1A"),  # AA9A
        ("ec1a1bb", "EC1A"),
        ("  sw1a 1aa ", "SW1A"),
        ("ZZ99 3VZ", "ZZ99"),  # pseudo-postcode: no fixed abode
        ("zz993cz", "ZZ99"),
    ],
)
def test_postcode_known_valid(value: str, outward: str) -> None:
    assert postcode_is_valid(value)
    assert postcode_outward(value) == outward
    assert _run(postcode_outward_expr, [value]) == [outward]
    assert _run(postcode_valid_expr, [value]) == [True]


@pytest.mark.parametrize(
    "value", ["SW1A 1AAA", "1AA 1AA", "SW1A", "ZZ99", "SW1A-1AA", "ABC1 1AA", "S 1AA", ""]
)
def test_postcode_known_invalid(value: str) -> None:
    assert not postcode_is_valid(value)
    assert postcode_outward(value) is None
    assert _run(postcode_outward_expr, [value]) == [None]
    assert _run(postcode_valid_expr, [value]) == [False]


POSTCODE_LIKE = st.from_regex(r"[A-Za-z]{1,2}[0-9][A-Za-z0-9]? ?[0-9][A-Za-z]{2}", fullmatch=True)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), TEXT, POSTCODE_LIKE), max_size=15))
def test_postcode_exprs_equal_scalar(values: list[str | None]) -> None:
    assert _run(postcode_outward_expr, values) == [
        None if v is None else postcode_outward(v) for v in values
    ]
    assert _run(postcode_valid_expr, values) == [
        None if v is None else postcode_is_valid(v) for v in values
    ]
    assert _run(postcode_district_expr, values) == _run(postcode_outward_expr, values)


@settings(deadline=None)
@given(st.lists(st.one_of(st.none(), st.dates()), max_size=20))
def test_month_start(values: list[date | None]) -> None:
    frame = pl.DataFrame({"d": values}, schema={"d": pl.Date})
    out = frame.select(month_start_expr(pl.col("d"))).to_series()
    assert out.dtype == pl.Date
    assert out.to_list() == [None if d is None else d.replace(day=1) for d in values]
