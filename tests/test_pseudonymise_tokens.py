"""The keyed tokeniser: byte-for-byte equal to Python's `hmac` on both paths, scoped by
LA and kind as the spec says, and never leaking key or value in errors."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pseudonymise.identifiers import normalise_identifier
from pseudonymise.keys import TrialKey
from pseudonymise.tokens import (
    LA_SCOPED_KINDS,
    IdentifierKind,
    Tokeniser,
    token_message,
)

KEY = TrialKey(bytes(range(32)))
LONG_KEY = TrialKey(bytes(range(100)))  # > one SHA-256 block: HMAC hashes it first
ENGINE = Tokeniser(KEY)  # whole columns through hmacbatch (C)
PYTHON = Tokeniser(KEY, native=False)  # whole columns through Python hmac
LONG_ENGINE = Tokeniser(LONG_KEY)
GLOBAL_KINDS = (IdentifierKind.NHS_NUMBER, IdentifierKind.UPN)

SPECIAL = st.sampled_from(
    [
        *("\x00", "|", "||", "'", '"', "\\", "\U0001f600", "\U00010348", " ", "\u3000"),
        *("\xdf", "\u017f", "\xe9", "a", "0", "v1|person|201|", "%", "_", "\n"),
    ]
)
TEXT = st.lists(st.one_of(st.characters(codec="utf-8"), SPECIAL), max_size=12).map("".join)
KINDS = st.sampled_from(list(IdentifierKind))
LA_CODES = st.text("0123456789", min_size=3, max_size=3)


def _la_for(kind: IdentifierKind, la_code: str) -> str | None:
    return la_code if kind in LA_SCOPED_KINDS else None


def _reference(
    key: TrialKey, value: str | None, kind: IdentifierKind, la: str | None
) -> str | None:
    """The token by the definition, computed with nothing but `hmac`."""
    if value is None or not normalise_identifier(value):
        return None
    message = token_message(kind, normalise_identifier(value), la)
    return hmac.new(key.secret, message, hashlib.sha256).hexdigest()[:32]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), TEXT), max_size=12), KINDS, LA_CODES)
def test_tokens_equal_hmac_on_every_path(
    values: list[str | None], kind: IdentifierKind, la_code: str
) -> None:
    la = _la_for(kind, la_code)
    column = pl.Series("id", values, dtype=pl.String)
    for key, tokeniser in ((KEY, ENGINE), (KEY, PYTHON), (LONG_KEY, LONG_ENGINE)):
        expected = [_reference(key, v, kind, la) for v in values]
        tokens = tokeniser.tokenise(column, kind, la)
        assert tokens.to_list() == expected
        assert tokens.name == "id"
        assert tokens.dtype == pl.String
        assert [None if v is None else tokeniser.tokenise_value(v, kind, la) for v in values] == (
            expected
        )


def test_large_column_native_equals_python_in_order() -> None:
    """A large column with repeats and nulls keeps its row order exactly."""
    values = [f" p{i % 7919:05d} " if i % 13 else None for i in range(150_000)]
    column = pl.Series("person_id", values)
    native = ENGINE.tokenise(column, IdentifierKind.PERSON, "201")
    assert native.to_list() == PYTHON.tokenise(column, IdentifierKind.PERSON, "201").to_list()
    assert native.null_count() == column.null_count()


def test_token_format_and_normalisation() -> None:
    token = PYTHON.tokenise_value(" 0001 23 ", IdentifierKind.PERSON, "201")
    assert token is not None
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert token == PYTHON.tokenise_value("000123", IdentifierKind.PERSON, "201")
    assert token != PYTHON.tokenise_value("123", IdentifierKind.PERSON, "201")
    assert PYTHON.tokenise_value(" \t ", IdentifierKind.PERSON, "201") is None
    column = pl.Series("id", [" 0001 23 ", "000123", "123", "", None])
    for tokeniser in (ENGINE, PYTHON):
        out = tokeniser.tokenise(column, IdentifierKind.PERSON, "201").to_list()
        assert out[0] == out[1] == token
        assert out[2] != token
        assert out[3:] == [None, None]


def test_token_message_bytes() -> None:
    assert token_message(IdentifierKind.FAMILY, "F01", "201") == b"v1|family|201|F01"
    assert token_message(IdentifierKind.NHS_NUMBER, "9434765919", None) == (
        b"v1|nhs_number||9434765919"
    )
    assert token_message("upn", "B801200005001", None) == b"v1|upn||B801200005001"
    assert token_message(IdentifierKind.PERSON, "É\U0001f600", "001") == (
        "v1|person|001|É\U0001f600".encode()
    )


@settings(deadline=None)
@given(KINDS, KINDS, LA_CODES, LA_CODES, TEXT)
def test_scoping_by_kind_and_la(
    kind_a: IdentifierKind, kind_b: IdentifierKind, la_a: str, la_b: str, value: str
) -> None:
    if not normalise_identifier(value):
        return
    a = PYTHON.tokenise_value(value, kind_a, _la_for(kind_a, la_a))
    b = PYTHON.tokenise_value(value, kind_b, _la_for(kind_b, la_b))
    if kind_a != kind_b:
        assert a != b
    elif kind_a in LA_SCOPED_KINDS:
        assert (a == b) == (la_a == la_b)
    else:
        assert a == b


def test_scoping_examples() -> None:
    person_201 = PYTHON.tokenise_value("12345", IdentifierKind.PERSON, "201")
    assert person_201 != PYTHON.tokenise_value("12345", IdentifierKind.PERSON, "202")
    assert person_201 != PYTHON.tokenise_value("12345", IdentifierKind.FAMILY, "201")
    for kind in GLOBAL_KINDS:
        same = {ENGINE.tokenise(pl.Series(["12345"]), kind, None).item() for _ in range(2)}
        assert same == {PYTHON.tokenise_value("12345", kind, None)}
    other_key = Tokeniser(TrialKey(bytes(range(1, 33))))
    assert other_key.tokenise_value("12345", IdentifierKind.PERSON, "201") != person_201


@pytest.mark.parametrize(
    ("kind", "la_code"),
    [
        (IdentifierKind.PERSON, None),
        (IdentifierKind.PERSON, "20"),
        (IdentifierKind.PERSON, "2011"),
        (IdentifierKind.PERSON, "٢٠١"),  # non-ASCII digits
        (IdentifierKind.PERSON, "201\n"),
        (IdentifierKind.NHS_NUMBER, "201"),
        (IdentifierKind.UPN, ""),
        ("postcode", None),
    ],
)
def test_kind_and_la_code_are_checked(kind: str, la_code: str | None) -> None:
    secret_value = "SECRETVALUE99"
    calls: list[Callable[[], object]] = [
        lambda: token_message(kind, secret_value, la_code),
        lambda: PYTHON.tokenise_value(secret_value, kind, la_code),
        lambda: ENGINE.tokenise(pl.Series([secret_value]), kind, la_code),
    ]
    for call in calls:
        with pytest.raises(ValueError) as info:
            call()
        assert secret_value not in str(info.value)
        assert secret_value not in repr(info.value)


@pytest.mark.parametrize("value", ["", "abc", " ABC", "A B", "A\ud800B"])
def test_token_message_refuses_unnormalised_or_bad_values(value: str) -> None:
    with pytest.raises(ValueError) as info:
        token_message(IdentifierKind.PERSON, value, "201")
    assert info.value.__context__ is None
    if value:
        assert value not in str(info.value) + repr(info.value)


def test_lone_surrogate_refused_without_echo() -> None:
    with pytest.raises(ValueError) as info:
        PYTHON.tokenise_value("AB\ud800CD", IdentifierKind.PERSON, "201")
    assert "AB" not in str(info.value) + repr(info.value)
    assert info.value.__context__ is None


def test_column_types() -> None:
    with pytest.raises(TypeError, match="text"):
        PYTHON.tokenise(pl.Series("id", [123, 456]), IdentifierKind.PERSON, "201")
    for tokeniser in (PYTHON, ENGINE):
        nulls = tokeniser.tokenise(pl.Series("id", [None, None]), IdentifierKind.PERSON, "201")
        assert nulls.dtype == pl.String
        assert nulls.to_list() == [None, None]
    empty = ENGINE.tokenise(pl.Series("id", [], dtype=pl.String), IdentifierKind.PERSON, "201")
    assert empty.len() == 0
    assert empty.dtype == pl.String
    categorical = pl.Series("id", ["a", "b"], dtype=pl.Categorical)
    assert (
        PYTHON.tokenise(categorical, IdentifierKind.PERSON, "201").to_list()
        == PYTHON.tokenise(pl.Series("id", ["a", "b"]), IdentifierKind.PERSON, "201").to_list()
    )


def test_sliced_and_chunked_columns_keep_their_rows() -> None:
    """Arrow offsets of a slice, or of a column in several chunks, still line up with rows."""
    whole = pl.Series("id", [f"v{i}" if i % 5 else None for i in range(1_000)])
    chunked = pl.concat([whole.slice(0, 300), whole.slice(300)], rechunk=False)
    assert chunked.n_chunks() == 2
    for column in (whole.slice(7, 500), chunked, whole.slice(999, 1), whole.slice(3, 0)):
        native = ENGINE.tokenise(column, IdentifierKind.FAMILY, "201")
        assert native.to_list() == PYTHON.tokenise(column, IdentifierKind.FAMILY, "201").to_list()


def test_tokeniser_never_shows_the_key() -> None:
    text = repr(ENGINE) + str(ENGINE)
    assert KEY.key_id in text
    for form in (KEY.secret.hex(), repr(KEY.secret), KEY.secret.decode("latin-1")):
        assert form not in text
    assert ENGINE.key_id == KEY.key_id
