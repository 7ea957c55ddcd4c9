"""The synthetic trial's identifiers: NHS numbers, UPNs and postcodes, valid unless spoiled."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pseudonymise.identifiers import (
    nhs_number_is_valid,
    postcode_is_valid,
    upn_check_letter,
    upn_is_valid,
)
from synthetic import identifiers


@given(st.integers(min_value=0, max_value=2**32))
def test_generated_nhs_numbers_pass_and_spoiled_ones_fail(seed: int) -> None:
    number = identifiers.new_nhs_number(random.Random(seed))
    assert number.startswith("999") and nhs_number_is_valid(number)
    assert nhs_number_is_valid(identifiers.space_nhs_number(number))
    assert not nhs_number_is_valid(identifiers.spoil_nhs_number(number))


@given(st.integers(min_value=0, max_value=2**32), st.booleans(), st.sampled_from(["901", "912"]))
def test_generated_upns_pass_and_spoiled_ones_fail(seed: int, temporary: bool, la: str) -> None:
    upn = identifiers.new_upn(random.Random(seed), la, temporary=temporary)
    assert len(upn) == 13 and upn[1:4] == la and upn[-1].isalpha() is temporary
    assert upn_is_valid(upn)
    assert not upn_is_valid(identifiers.spoil_upn(upn))


@given(st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUVWXYZ", min_size=12, max_size=12))
def test_upn_check_letter_agrees_with_the_pseudonymiser(body: str) -> None:
    assert identifiers.upn_check_letter(body) == upn_check_letter(body)


@given(st.integers(min_value=0, max_value=2**32))
def test_generated_postcodes_are_uk_format(seed: int) -> None:
    rng = random.Random(seed)
    assert postcode_is_valid(identifiers.new_postcode(rng, rng.choice(["LS", "B", "NG"])))


@settings(max_examples=20)
@given(st.integers(min_value=0, max_value=2**32))
def test_vectorised_identifiers_are_valid(seed: int) -> None:
    rng = np.random.default_rng(seed)
    assert all(nhs_number_is_valid(str(n)) for n in identifiers.nhs_numbers_array(rng, 500))
    bodies, checks = identifiers.upn_bodies_array(rng, "905", 500)
    letters = identifiers.UPN_CHECK_LETTERS
    assert all(upn_is_valid(f"{letters[c]}{b}") for b, c in zip(bodies, checks, strict=True))
