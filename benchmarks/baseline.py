"""The naive baseline: what a careful engineer would write first with the same packages.

pandas `read_csv(dtype=str)`; `hmac.new` per value over the identifier columns; a pandera
schema on the pandas backend with the service model's checks for `people` (column checks
plus dataframe-level checks for the cross-field rules and the repeated key); `to_sql`
through SQLAlchemy into SQLite. Per-value helpers that are not the point of the comparison
(the NHS number, UPN and postcode checks) are the service's own scalar functions.

Only row counts and times leave this module: pandera's failure cases hold raw values and are
used for their row index alone.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
import sqlalchemy as sa
from pandera.errors import SchemaErrors

from pseudonymise.identifiers import (
    nhs_number_is_valid,
    normalise_identifier,
    postcode_outward,
    upn_is_valid,
)
from schemas import codes
from schemas.contract import ID_MAX_LENGTH, TRIAL_START, Treatment
from schemas.datasets.people import PEOPLE

SECRET = b"benchmark-only key, not a secret: 0123456789abcdef"
DROPPED = [f.name for f in PEOPLE.fields if f.treatment is Treatment.DROP]
CHILD_BORN_AFTER = TRIAL_START.replace(year=TRIAL_START.year - 18)


def run_baseline(path: Path, sqlite: Path, *, la_code: str, today: date) -> dict[str, Any]:
    seconds: dict[str, float] = {}
    began = time.perf_counter()
    frame = pd.read_csv(path, dtype=str)
    seconds["read"] = time.perf_counter() - began
    rows = len(frame)

    began = time.perf_counter()
    frame = pseudonymise(frame, la_code)
    seconds["pseudonymise"] = time.perf_counter() - began

    began = time.perf_counter()
    frame = typed(frame)
    bad = failing_rows(frame, today)
    clean, rejected = frame[~frame.index.isin(bad)], frame[frame.index.isin(bad)]
    seconds["validate"] = time.perf_counter() - began

    began = time.perf_counter()
    engine = sa.create_engine(f"sqlite:///{sqlite}")
    stored = [c for c in clean.columns if not c.startswith("_")]
    clean[stored].to_sql("people", engine, if_exists="replace", index=False)
    rejected[stored].to_sql("quarantine_people", engine, if_exists="replace", index=False)
    engine.dispose()
    seconds["load"] = time.perf_counter() - began
    return {
        "rows": rows,
        "rows_loaded": len(clean),
        "rows_rejected": len(rejected),
        "seconds": sum(seconds.values()),
        "stages": seconds,
    }


# --- pseudonymise: a loop per column --------------------------------------------------------


def token(kind: str, scope: str, value: str) -> str:
    message = f"v1|{kind}|{scope}|{normalise_identifier(value)}".encode()
    return hmac.new(SECRET, message, hashlib.sha256).hexdigest()[:32]


def pseudonymise(frame: pd.DataFrame, la_code: str) -> pd.DataFrame:
    frame = frame.drop(columns=DROPPED)
    for column in frame.columns:
        frame[column] = frame[column].str.strip().replace("", None)
    frame["_person_id_length"] = frame["person_id"].str.len()
    for column, kind, scope in (
        ("person_id", "person", la_code),
        ("family_id", "family", la_code),
    ):
        frame[f"{column[:-3]}_token"] = [
            token(kind, scope, v) if isinstance(v, str) else None for v in frame[column]
        ]
    for column, valid in (("nhs_number", nhs_number_is_valid), ("upn", upn_is_valid)):
        frame[f"_{column}_given"] = frame[column].notna()
        frame[f"{column}_token"] = [
            token(column, "", v) if isinstance(v, str) and valid(v) else None for v in frame[column]
        ]
    frame["postcode_district"] = [
        postcode_outward(v) if isinstance(v, str) else None for v in frame["postcode"]
    ]
    return frame.drop(columns=["person_id", "family_id", "nhs_number", "upn", "postcode"])


# --- validate: pandera on pandas ------------------------------------------------------------


def parse_dates(values: pd.Series) -> pd.Series:
    iso = pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
    uk = pd.to_datetime(values, format="%d/%m/%Y", errors="coerce")
    return iso.fillna(uk)


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    for column in ("role", "sex", "ethnicity", "upn_unknown", "disability"):
        frame[column] = frame[column].str.upper()
    frame["sex"] = frame["sex"].replace(codes.CIN_GENDER_CODES)
    for column in ("date_of_birth", "expected_date_of_birth", "date_of_death"):
        frame[f"_{column}_given"] = frame[column].notna()
        frame[column] = parse_dates(frame[column])
    return frame


def schema(today: date) -> pa.DataFrameSchema:
    pattern = "^(?:{0})(?:;(?:{0}))*$".format("|".join(codes.DISABILITIES))
    future = pd.Timestamp(today)
    return pa.DataFrameSchema(
        {
            "person_token": pa.Column(str, nullable=False, unique=True),
            "family_token": pa.Column(str, nullable=False),
            "_person_id_length": pa.Column(float, pa.Check.le(ID_MAX_LENGTH), nullable=True),
            "role": pa.Column(str, pa.Check.isin(codes.PERSON_ROLES), nullable=False),
            "sex": pa.Column(str, pa.Check.isin(codes.SEXES), nullable=False),
            "ethnicity": pa.Column(str, pa.Check.isin(codes.ETHNICITIES), nullable=True),
            "upn_unknown": pa.Column(str, pa.Check.isin(codes.UPN_UNKNOWN_CODES), nullable=True),
            "disability": pa.Column(str, pa.Check.str_matches(pattern), nullable=True),
            "date_of_birth": pa.Column("datetime64[us]", pa.Check.le(future), nullable=True),
        },
        checks=[
            pa.Check(lambda df: df["_date_of_birth_given"] == df["date_of_birth"].notna()),
            pa.Check(lambda df: df["_date_of_death_given"] == df["date_of_death"].notna()),
            pa.Check(
                lambda df: df["_date_of_birth_given"] | (df["role"] == "UNBORN"),
                name="required_unless_role_unborn",
            ),
            pa.Check(
                lambda df: df["_expected_date_of_birth_given"] | (df["role"] != "UNBORN"),
                name="required_when_role_unborn",
            ),
            pa.Check(
                lambda df: (
                    (df["role"] != "CHILD")
                    | ~(df["date_of_birth"] <= pd.Timestamp(CHILD_BORN_AFTER))
                ),
                name="child_under_18_in_trial_window",
            ),
            pa.Check(
                lambda df: df["upn_unknown"].isna() | ~df["_upn_given"],
                name="only_when_upn_blank",
            ),
            pa.Check(
                lambda df: ~(df["date_of_death"] < df["date_of_birth"]),
                name="on_or_after_date_of_birth",
            ),
        ],
    )


def failing_rows(frame: pd.DataFrame, today: date) -> set[int]:
    """Index labels of every row that breaks a check (values in the errors are not read)."""
    try:
        schema(today).validate(frame, lazy=True)
    except SchemaErrors as errors:
        index = errors.failure_cases["index"].dropna()
        return {int(i) for i in index}
    return set()
