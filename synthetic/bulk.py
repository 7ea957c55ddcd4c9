"""A large `people` file for benchmarks, built column by column (no Python loop per row)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from schemas import codes
from schemas.datasets import DATASETS
from synthetic import identifiers, lexicon

FAMILY_SIZE = 4  # two adults' places, then two children
ADULTS_BORN = (date(1960, 1, 1), date(2003, 12, 31))
CHILDREN_BORN = (date(2007, 1, 1), date(2025, 6, 30))
# One broken field per bad row; each breaks a different column's rule.
BREAKAGES: dict[str, pl.Expr] = {
    "nhs_number": pl.col("wrong_nhs_number"),  # wrong check digit: a warning
    "upn": pl.col("wrong_upn"),  # wrong check letter: a warning
    "sex": pl.lit(None, dtype=pl.String),  # blank although required
    "role": pl.lit("SIBLING"),  # not a code
    "date_of_birth": pl.lit("32/01/2025"),  # not a date
    "person_id": pl.col("person_id").str.pad_end(40, "X"),  # longer than 36 characters
    "postcode": pl.lit("NOT KNOWN"),  # not a postcode: a warning
    "ethnicity": pl.lit("WBR"),  # not a code
}

IntArray = npt.NDArray[np.int64]


def write_people_csv(
    path: Path, rows: int, *, seed: int, bad_fraction: float = 0.0, la_code: str = "901"
) -> None:
    """Write `rows` people with every identifier column filled; a `bad_fraction` of the rows
    each carry one broken field, spread over the columns of `BREAKAGES`.
    """
    if rows < 1 or not 0.0 <= bad_fraction <= 1.0:
        raise ValueError("rows must be positive and bad_fraction between 0 and 1")
    rng = np.random.default_rng(seed)
    breakage = np.where(rng.random(rows) < bad_fraction, rng.integers(0, len(BREAKAGES), rows), -1)
    people = _people(rng, rows, la_code).with_columns(breakage=pl.Series(breakage, dtype=pl.Int64))
    broken = people.with_columns(
        pl.when(pl.col("breakage") == index).then(expr).otherwise(pl.col(column)).alias(column)
        for index, (column, expr) in enumerate(BREAKAGES.items())
    )
    broken.select(spec.name for spec in DATASETS["people"].fields).sink_csv(path)


def _people(rng: np.random.Generator, n: int, la_code: str) -> pl.LazyFrame:
    index = np.arange(n, dtype=np.int64)
    family = index // FAMILY_SIZE
    families = int(family[-1]) + 1
    is_child = index % FAMILY_SIZE >= 2
    is_female = rng.random(n) < 0.5
    upn_body, upn_check = identifiers.upn_bodies_array(rng, la_code, n)
    numbers = pl.DataFrame(
        {
            "index": index,
            "family": family,
            "is_child": is_child,
            "is_female": is_female,
            "other_adult": rng.random(n) < 0.15,
            "first_f": rng.integers(0, len(FIRST_F), n),
            "first_m": rng.integers(0, len(FIRST_M), n),
            "surname": rng.integers(0, len(SURNAMES), families)[family],
            "other": rng.integers(0, len(FIRST_F), n),
            "house": rng.integers(1, 180, families)[family],
            "street": rng.integers(0, len(lexicon.STREETS), families)[family],
            "locality": rng.integers(0, len(lexicon.LOCALITIES), families)[family],
            "area": rng.integers(0, len(lexicon.POSTCODE_AREAS), families)[family],
            "district": rng.integers(1, 30, families)[family],
            "sector": rng.integers(0, 10, families)[family],
            "unit_1": rng.integers(0, len(lexicon.INWARD_LETTERS), families)[family],
            "unit_2": rng.integers(0, len(lexicon.INWARD_LETTERS), families)[family],
            "born": _days_of_birth(rng, is_child),
            "ethnicity": rng.integers(0, len(codes.ETHNICITIES), families)[family],
            "nhs": identifiers.nhs_numbers_array(rng, n),
            "upn_body": upn_body,
            "upn_check": upn_check,
            "disability": rng.integers(0, len(DISABILITIES), n),
        }
    )
    return numbers.lazy().select(
        person_id=pl.lit("P") + pl.col("index").cast(pl.String).str.zfill(9),
        family_id=pl.lit("F") + pl.col("family").cast(pl.String).str.zfill(9),
        role=pl.when("is_child")
        .then(pl.lit("CHILD"))
        .when("other_adult")
        .then(pl.lit("OTHER_ADULT"))
        .otherwise(pl.lit("PARENT_CARER")),
        first_name=pl.when("is_female")
        .then(_lookup("first_f", FIRST_F))
        .otherwise(_lookup("first_m", FIRST_M)),
        last_name=_lookup("surname", SURNAMES),
        other_names=_lookup("other", FIRST_F),
        address_line_1=pl.col("house").cast(pl.String) + " " + _lookup("street", lexicon.STREETS),
        address_line_2=_lookup("locality", lexicon.LOCALITIES),
        address_line_3=pl.lit(lexicon.LA_NAMES[0]),
        address_line_4=pl.lit("Eastmoorshire"),
        postcode=pl.concat_str(
            _lookup("area", lexicon.POSTCODE_AREAS),
            pl.col("district").cast(pl.String),
            pl.lit(" "),
            pl.col("sector").cast(pl.String),
            _lookup("unit_1", tuple(lexicon.INWARD_LETTERS)),
            _lookup("unit_2", tuple(lexicon.INWARD_LETTERS)),
        ),
        date_of_birth=pl.col("born").cast(pl.Date).dt.strftime("%Y-%m-%d"),
        expected_date_of_birth=pl.lit(None, dtype=pl.String),
        sex=pl.when("is_female").then(pl.lit("F")).otherwise(pl.lit("M")),
        ethnicity=_lookup("ethnicity", codes.ETHNICITIES),
        nhs_number=pl.col("nhs").cast(pl.String),
        wrong_nhs_number=(pl.col("nhs") // 10 * 10 + (pl.col("nhs") + 1) % 10).cast(pl.String),
        upn=_lookup("upn_check", UPN_LETTERS) + pl.col("upn_body").cast(pl.String),
        wrong_upn=_lookup_expr((pl.col("upn_check") + 1) % 23, UPN_LETTERS)
        + pl.col("upn_body").cast(pl.String),
        upn_unknown=pl.lit(None, dtype=pl.String),
        disability=_lookup("disability", DISABILITIES),
        date_of_death=pl.lit(None, dtype=pl.String),
    )


FIRST_F = lexicon.FIRST_NAMES_F + lexicon.ACCENTED_NAMES_F
FIRST_M = lexicon.FIRST_NAMES_M + lexicon.ACCENTED_NAMES_M
SURNAMES = lexicon.LAST_NAMES + lexicon.ACCENTED_LAST_NAMES
UPN_LETTERS = tuple(identifiers.UPN_CHECK_LETTERS)
DISABILITIES = ("NONE", "NONE", "LD", "COMM;AUT", "HEAR")


def _lookup(column: str, choices: tuple[str, ...]) -> pl.Expr:
    return _lookup_expr(pl.col(column), choices)


def _lookup_expr(positions: pl.Expr, choices: tuple[str, ...]) -> pl.Expr:
    return pl.lit(pl.Series(choices, dtype=pl.String)).gather(positions)


def _days_of_birth(rng: np.random.Generator, is_child: npt.NDArray[np.bool_]) -> IntArray:
    """Days since 1970-01-01: adults born 1960-2003, children young enough for the trial."""
    adult = rng.integers(*_epoch_days(ADULTS_BORN), size=is_child.size, endpoint=True)
    child = rng.integers(*_epoch_days(CHILDREN_BORN), size=is_child.size, endpoint=True)
    return np.where(is_child, child, adult)


def _epoch_days(bounds: tuple[date, date]) -> tuple[int, int]:
    epoch = date(1970, 1, 1)
    return (bounds[0] - epoch).days, (bounds[1] - epoch).days
