"""The LA code is checked one way everywhere: exactly three ASCII digits."""

from __future__ import annotations

import pytest

from pseudonymise.la_code import check_la_code, is_la_code


@pytest.mark.parametrize("text", ["201", "000", "999"])
def test_three_ascii_digits_are_an_la_code(text: str) -> None:
    assert is_la_code(text)
    assert check_la_code(text) == text


@pytest.mark.parametrize("text", ["", "20", "2011", " 201", "201\n", "20a", "٢٠١", "²⁰¹"])
def test_anything_else_is_refused_without_being_repeated(text: str) -> None:
    assert not is_la_code(text)
    with pytest.raises(ValueError, match=r"^an LA code must be three digits$"):
        check_la_code(text)
