"""Making NHS numbers, UPNs and postcodes that pass (or, when asked, fail) their checks.

The algorithms are written out here rather than borrowed from `pseudonymise.identifiers` so that
the tests can check one implementation against the other: a generator that shared the checker's
bug would hide it.
"""

from __future__ import annotations

import random

import numpy as np
import numpy.typing as npt

from synthetic.lexicon import INWARD_LETTERS

# NHS numbers starting 999 are reserved for testing and never issued to a patient.
NHS_TEST_PREFIX = "999"
NHS_WEIGHTS = tuple(range(10, 1, -1))  # weights of the first nine digits
UPN_CHECK_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"  # remainder mod 23 -> letter (no I, O, S)


def nhs_check_digit(first_nine: str) -> int | None:
    """The modulus 11 check digit of nine digits, or None when no tenth digit can be valid."""
    total = sum(int(d) * w for d, w in zip(first_nine, NHS_WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def new_nhs_number(rng: random.Random) -> str:
    """A valid ten-digit NHS number from the test range."""
    while True:
        first_nine = NHS_TEST_PREFIX + f"{rng.randrange(1_000_000):06d}"
        check = nhs_check_digit(first_nine)
        if check is not None:
            return f"{first_nine}{check}"


def spoil_nhs_number(nhs_number: str) -> str:
    """The same number with a wrong check digit (any other digit fails modulus 11)."""
    digits = nhs_number.replace(" ", "")
    wrong = (int(digits[9]) + 1) % 10
    return f"{digits[:9]}{wrong}"


def space_nhs_number(nhs_number: str) -> str:
    """The 3-3-4 spacing used on NHS cards."""
    return f"{nhs_number[:3]} {nhs_number[3:6]} {nhs_number[6:]}"


def _upn_value(char: str) -> int:
    return int(char) if char.isdigit() else UPN_CHECK_LETTERS.index(char)


def upn_check_letter(last_twelve: str) -> str:
    """DfE check letter: characters 2-13 weighted by their position, sum mod 23, looked up."""
    total = sum(_upn_value(c) * position for position, c in enumerate(last_twelve, start=2))
    return UPN_CHECK_LETTERS[total % 23]


def new_upn(rng: random.Random, la_code: str, *, temporary: bool = False) -> str:
    """A valid UPN: check letter, LA code, school number, year of issue, serial.

    A temporary UPN ends in a letter instead of the last serial digit.
    """
    school = f"{rng.randrange(1000, 8000):04d}"
    year = f"{rng.randrange(10, 25):02d}"
    serial = f"{rng.randrange(1000):03d}"
    if temporary:
        serial = serial[:2] + rng.choice(UPN_CHECK_LETTERS)
    body = f"{la_code}{school}{year}{serial}"
    return upn_check_letter(body) + body


def spoil_upn(upn: str) -> str:
    """The same UPN with a wrong check letter."""
    right = UPN_CHECK_LETTERS.index(upn[0])
    return UPN_CHECK_LETTERS[(right + 1) % 23] + upn[1:]


def new_postcode(rng: random.Random, area: str) -> str:
    """A UK-format postcode in `area`: district 1-29, then digit and two inward letters."""
    district = rng.randrange(1, 30)
    inward = f"{rng.randrange(10)}{rng.choice(INWARD_LETTERS)}{rng.choice(INWARD_LETTERS)}"
    return f"{area}{district} {inward}"


# Vectorised versions for the bulk writer.

IntArray = npt.NDArray[np.int64]


def nhs_numbers_array(rng: np.random.Generator, n: int) -> IntArray:
    """`n` valid test-range NHS numbers as integers (all have ten digits: they start 999)."""
    body = np.full(n, int(NHS_TEST_PREFIX) * 1_000_000, dtype=np.int64)
    body += rng.integers(0, 1_000_000, size=n)
    check = _nhs_check_array(body)
    invalid = check == 10
    # A nine-digit body whose check would be 10 is moved to its neighbour, whose check is not.
    while invalid.any():
        body[invalid] = np.where(
            body[invalid] % 1_000_000 == 999_999, body[invalid] - 1, body[invalid] + 1
        )
        check = _nhs_check_array(body)
        invalid = check == 10
    return body * 10 + check


def _nhs_check_array(body: IntArray) -> IntArray:
    total = np.zeros(body.shape, dtype=np.int64)
    rest = body.copy()
    for weight in range(2, 11):  # last of the nine digits has weight 2
        total += (rest % 10) * weight
        rest //= 10
    check = 11 - total % 11
    return np.where(check == 11, 0, check)


def upn_bodies_array(rng: np.random.Generator, la_code: str, n: int) -> tuple[IntArray, IntArray]:
    """Twelve-digit UPN bodies (LA code first) and the index of each one's check letter."""
    body = np.full(n, int(la_code) * 10**9, dtype=np.int64)
    body += rng.integers(1000, 8000, size=n) * 10**5  # school
    body += rng.integers(10, 25, size=n) * 10**3  # year of issue
    body += rng.integers(0, 1000, size=n)  # serial
    total = np.zeros(n, dtype=np.int64)
    rest = body.copy()
    for position in range(13, 1, -1):  # characters 13 down to 2
        total += (rest % 10) * position
        rest //= 10
    return body, total % 23
