"""Correctness at speed: the fast path equals a plain, row-by-row reference implementation.

The fast path is what the benchmark measures: `check_submission_chunks` (DuckDB HMAC, polars
parsing, pandera on polars, slices with the repeated-key rule settled across them) loaded by
`Warehouse.load_return_chunks` into DuckDB. The reference below is written independently of it
for the `people` dataset: Python's `csv` module, `hmac.new` per value, and every rule spelled
out as an `if` (only the rule names and code lists, the contract's vocabulary, are shared).
On the benchmark's own kind of input plus hand-made awkward rows, the tokens, the rejected rows
with their rules, the issues and the loaded rows must be exactly the same.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ingest.warehouse import Warehouse
from pseudonymise.keys import TrialKey
from pseudonymise.tokens import Tokeniser
from schemas import codes, rules
from schemas.chunked import check_submission_chunks, tables_of
from schemas.contract import Treatment
from schemas.datasets.people import PEOPLE
from synthetic import write_people_csv

SECRET = b"reference-test key, not a secret 0123456789"
LA = "901"
TODAY = date(2026, 3, 1)
RECEIVED = datetime(2026, 3, 1, 9, tzinfo=UTC)
HEADER = [f.name for f in PEOPLE.fields]

# Awkward rows the generator does not make (missing cells are blank).
EXTRA_ROWS: list[dict[str, str]] = [
    {"person_id": " p  77 ", "family_id": "f1", "role": "child", "sex": "2",
     "date_of_birth": "7/3/2015", "postcode": "sw1a1aa", "nhs_number": "943 476 5919"},
    {"person_id": "P77", "family_id": "F1", "role": "CHILD", "sex": "F",
     "date_of_birth": "2015-03-07"},  # the same person as the row above once normalised
    {"person_id": "P78", "family_id": "F1", "role": "CHILD", "sex": "M",
     "date_of_birth": "2001-01-01"},  # too old for the trial
    {"person_id": "P79", "family_id": "F1", "role": "UNBORN", "sex": "U"},  # no expected date
    {"person_id": "P80", "family_id": "F1", "role": "UNBORN", "sex": "U",
     "expected_date_of_birth": "2026-05-01"},
    {"person_id": "P81", "family_id": "F1", "role": "PARENT_CARER", "sex": "F",
     "date_of_birth": "1990-01-01", "date_of_death": "1989-12-31"},  # died before birth
    {"person_id": "P82", "family_id": "F1", "role": "PARENT_CARER", "sex": "F",
     "date_of_birth": "01/02/90"},  # two-digit year
    {"person_id": "P83", "family_id": "F1", "role": "CHILD", "sex": "F",
     "date_of_birth": "2015-02-30"},  # no such day
    {"person_id": "P84", "family_id": "F1", "role": "CHILD", "sex": "F",
     "date_of_birth": "2015-01-01", "upn": "A801200005001", "upn_unknown": "UN2"},
    {"person_id": "P85", "family_id": "F1", "role": "CHILD", "sex": "X",
     "date_of_birth": "2015-01-01", "disability": " ld ; ; comm ", "ethnicity": "wbri"},
    {"person_id": "P86", "role": "CHILD", "sex": "F", "date_of_birth": "2015-01-01",
     "upn_unknown": "UN9", "postcode": "ZZ99 3VZ"},  # no family; a pseudo-postcode
    {"person_id": "P87", "family_id": "F2", "role": "OTHER_ADULT", "sex": "M",
     "date_of_birth": "2027-01-01", "nhs_number": "9434765918"},  # future; bad check digit
    {"family_id": "F2", "role": "CHILD", "sex": "M", "date_of_birth": "2016-06-06"},  # no ID
    {"person_id": "P88", "family_id": "F2", "role": "CHI\x1fLD", "sex": "M",
     "date_of_birth": "2016-06-06"},  # a control character
    {"person_id": "P\x0789", "family_id": "F2", "role": "CHILD", "sex": "M",
     "date_of_birth": "2016-06-06"},  # a control character in the key
    {"person_id": "P90", "family_id": "F2", "role": "PARENT_CARER", "sex": "M",
     "date_of_birth": "0000-01-01"},  # no year 0 in PostgreSQL
    {"person_id": "P91", "family_id": "F2", "role": "PARENT_CARER", "sex": "M",
     "date_of_birth": "31/12/1899"},
    {"person_id": "P92", "family_id": "F2", "role": "UNBORN", "sex": "U",
     "expected_date_of_birth": "2100-01-01"},
]  # fmt: skip


# --- the reference implementation ---------------------------------------------------------


@dataclass
class RefRow:
    number: int
    values: dict[str, Any] = field(default_factory=dict)  # stored name -> stored value
    issues: set[tuple[str, str, str]] = field(default_factory=set)  # (column, rule, severity)

    def error(self, column: str, rule: str) -> None:
        self.issues.add((column, rule, "error"))

    def warning(self, column: str, rule: str) -> None:
        self.issues.add((column, rule, "warning"))

    @property
    def rejected(self) -> bool:
        return any(severity == "error" for _, _, severity in self.issues)

    @property
    def rules(self) -> str:
        return ";".join(sorted({rule for _, rule, sev in self.issues if sev == "error"}))


def token(kind: str, la_code: str, value: str) -> str:
    message = f"v1|{kind}|{la_code}|{value}".encode()
    return hmac.new(SECRET, message, hashlib.sha256).hexdigest()[:32]


def normalised(value: str) -> str:
    return re.sub(r"\s+", "", value).upper()


def nhs_valid(value: str) -> bool:
    if not re.fullmatch(r"[0-9]{10}", value):
        return False
    total = sum(int(d) * w for d, w in zip(value[:9], range(10, 1, -1), strict=True))
    check = (11 - total % 11) % 11
    return check != 10 and check == int(value[9])


UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"


def upn_valid(value: str) -> bool:
    if not re.fullmatch(f"[{UPN_LETTERS}][0-9]{{11}}[0-9{UPN_LETTERS}]", value):
        return False
    worth = {**{str(d): d for d in range(10)}, **{c: i for i, c in enumerate(UPN_LETTERS)}}
    total = sum(worth[c] * n for n, c in enumerate(value[1:], start=2))
    return UPN_LETTERS[total % 23] == value[0]


def parse_date(text: str) -> date | str:
    """A date, or the rule it breaks (ISO or UK day/month/year only, as the spec says, in
    1900-2099)."""
    iso = re.fullmatch(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})", text)
    uk = re.fullmatch(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})", text)
    if iso:
        year, month, day = int(iso[1]), int(iso[2]), int(iso[3])
    elif uk:
        year, month, day = int(uk[3]), int(uk[2]), int(uk[1])
    elif re.fullmatch(r"[0-9]{1,2}/[0-9]{1,2}/[0-9]{2}", text):
        return rules.DATE_AMBIGUOUS
    else:
        return rules.DATE_FORMAT
    try:
        # Python has no year 0; 2000 is a leap year as year 0 is, so its days are the same.
        parsed = date(year or 2000, month, day)
    except ValueError:
        return rules.DATE_FORMAT
    return parsed if 1900 <= year <= 2099 else rules.DATE_OUT_OF_BOUNDS


def reference(content: bytes) -> list[RefRow]:
    records = list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))
    header = [h.strip() for h in records[0]]
    rows = []
    for index, record in enumerate(records[1:], start=2):
        cells = {name: (cell.strip() or None) for name, cell in zip(header, record, strict=False)}
        if any(cells.values()):
            rows.append(reference_row_with_controls(index, cells))
    seen: dict[str, int] = {}
    for row in rows:
        person = row.values["person_token"]
        if person is not None:
            seen[person] = seen.get(person, 0) + 1
    for row in rows:
        if seen.get(row.values["person_token"], 0) > 1:
            row.error("person_id", rules.DUPLICATE_KEY)
    for row in rows:
        if row.rejected:  # a value a rule refused is not kept, unless a token or coarsened
            for column, _, severity in row.issues:
                if severity == "error" and column in KEPT_AS_GIVEN:
                    row.values[column] = None
    return rows


KEPT_AS_GIVEN = {f.name for f in PEOPLE.stored_fields if f.treatment is Treatment.KEEP}
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def reference_row_with_controls(number: int, cells: dict[str, str | None]) -> RefRow:
    """A cell of a stored field with a control character is refused and blank; nothing else
    is said about its column."""
    stored = {f.name for f in PEOPLE.stored_fields}
    refused = {n for n, v in cells.items() if n in stored and v and CONTROL.search(v)}
    row = reference_row(number, {n: None if n in refused else v for n, v in cells.items()})
    row.issues = {i for i in row.issues if i[0] not in refused}
    for name in refused:
        row.error(name, rules.CONTROL_CHARACTER)
    return row


def reference_row(number: int, cells: dict[str, str | None]) -> RefRow:
    row = RefRow(number)
    stored = row.values
    for name, kind in (("person_id", "person"), ("family_id", "family")):
        raw = cells.get(name)
        # An over-long ID rejects the row but is still tokenised (and stored in quarantine).
        stored[f"{name[:-3]}_token"] = token(kind, LA, normalised(raw)) if raw else None
        if raw is None:
            row.error(name, rules.REQUIRED)
        elif len(raw) > 36:
            row.error(name, rules.MAX_LENGTH)
    for name, check, rule in (
        ("nhs_number", nhs_valid, rules.NHS_NUMBER_CHECK),
        ("upn", upn_valid, rules.UPN_CHECK),
    ):
        raw = cells.get(name)
        stored[f"{name}_token"] = None
        if raw is not None and check(normalised(raw)):
            stored[f"{name}_token"] = token(name, "", normalised(raw))
        elif raw is not None:
            row.warning(name, rule)
    postcode = cells.get("postcode")
    match = re.fullmatch(r"([A-Z]{1,2}[0-9][A-Z0-9]?)[0-9][A-Z]{2}", normalised(postcode or ""))
    stored["postcode_district"] = match[1] if match else None
    if postcode is not None and not match:
        row.warning("postcode", rules.POSTCODE_FORMAT)
    role = reference_code(row, cells, "role", codes.PERSON_ROLES, required=True)
    sex_raw = cells.get("sex")
    cells["sex"] = codes.CIN_GENDER_CODES.get(sex_raw.upper(), sex_raw) if sex_raw else None
    reference_code(row, cells, "sex", codes.SEXES, required=True)
    reference_code(row, cells, "ethnicity", codes.ETHNICITIES)
    reference_code(row, cells, "upn_unknown", codes.UPN_UNKNOWN_CODES)
    reference_disability(row, cells.get("disability"))
    born = reference_date(row, cells, "date_of_birth", "month_of_birth")
    expected = reference_date(row, cells, "expected_date_of_birth", "expected_month_of_birth")
    died = reference_date(row, cells, "date_of_death", "month_of_death")
    if isinstance(born, date) and born > TODAY:
        row.error("date_of_birth", rules.NOT_IN_FUTURE)
    if cells.get("date_of_birth") is None and role != "UNBORN":
        row.error("date_of_birth", "required_unless_role_unborn")
    if cells.get("expected_date_of_birth") is None and role == "UNBORN":
        row.error("expected_date_of_birth", "required_when_role_unborn")
    if role == "CHILD" and isinstance(born, date) and born <= date(2006, 9, 1):
        row.error("date_of_birth", "child_under_18_in_trial_window")
    if cells.get("upn_unknown") is not None and cells.get("upn") is not None:
        row.error("upn_unknown", "only_when_upn_blank")
    if isinstance(born, date) and isinstance(died, date) and died < born:
        row.error("date_of_death", "on_or_after_date_of_birth")
    del expected
    return row


def reference_code(
    row: RefRow,
    cells: dict[str, str | None],
    name: str,
    allowed: tuple[str, ...],
    *,
    required: bool = False,
) -> str | None:
    raw = cells.get(name)
    value = raw.upper() if raw is not None else None
    row.values[name] = value if value in allowed else None  # an unknown code is not stored
    if value is None and required:
        row.error(name, rules.REQUIRED)
    elif value is not None and value not in allowed:
        row.error(name, rules.CODE_LIST)
    return value


def reference_disability(row: RefRow, raw: str | None) -> None:
    items = [item.strip().upper() for item in (raw or "").split(";")]
    value = ";".join(item for item in items if item) or None
    allowed = value is None or all(item in codes.DISABILITIES for item in value.split(";"))
    row.values["disability"] = value if allowed else None
    if not allowed:
        row.error("disability", rules.CODE_LIST)


def reference_date(
    row: RefRow, cells: dict[str, str | None], name: str, stored: str
) -> date | None:
    raw = cells.get(name)
    parsed = parse_date(raw) if raw is not None else None
    if isinstance(parsed, str):
        row.error(name, parsed)
        parsed = None
    row.values[stored] = parsed.replace(day=1) if parsed else None
    return parsed


# --- the fast path, loaded -------------------------------------------------------------------


def messy_people_csv(path: Path) -> bytes:
    write_people_csv(path, 400, seed=11, bad_fraction=0.3, la_code=LA)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HEADER, lineterminator="\n")
    writer.writerows(EXTRA_ROWS)
    return path.read_bytes() + out.getvalue().encode()


def fast_path(content: bytes, chunk_rows: int) -> Warehouse:
    warehouse = Warehouse("duckdb:///:memory:")
    warehouse.create_schema()
    tokeniser = Tokeniser(TrialKey(SECRET))  # the native HMAC for every column
    submission = check_submission_chunks(
        content, la_code=LA, tokeniser=tokeniser, today=TODAY, chunk_rows=chunk_rows, min_bytes=0
    )
    for chunks in tables_of(submission):
        warehouse.load_return_chunks(
            la_code=LA,
            dataset="people",
            submission_id="s1",
            key_id=tokeniser.key_id,
            received_at=RECEIVED,
            chunks=chunks,
        )
    return warehouse


def select(
    warehouse: Warehouse, schema: str, name: str, columns: list[str]
) -> list[tuple[Any, ...]]:
    table = warehouse.table(schema, name)
    with warehouse.engine.connect() as conn:
        query = sa.select(*(table.c[c] for c in columns)).order_by(table.c.row_number)
        return [tuple(r) for r in conn.execute(query).all()]


STORED = [f.stored_name for f in PEOPLE.stored_fields]


@pytest.fixture(scope="module")
def content(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return messy_people_csv(tmp_path_factory.mktemp("reference") / "people.csv")


@pytest.mark.parametrize("chunk_rows", [37, 1_000])
def test_fast_path_equals_the_reference(content: bytes, chunk_rows: int) -> None:
    expected = reference(content)
    warehouse = fast_path(content, chunk_rows)
    clean = [r for r in expected if not r.rejected]
    rejected = [r for r in expected if r.rejected]
    assert len(clean) > 300 and len(rejected) > 50  # the input exercises both
    assert select(warehouse, "clean", "people", ["row_number", *STORED]) == [
        (r.number, *(r.values[c] for c in STORED)) for r in clean
    ]
    assert select(warehouse, "ops", "quarantine_people", ["row_number", "rules", *STORED]) == [
        (r.number, r.rules, *(r.values[c] for c in STORED)) for r in rejected
    ]
    issues = select(warehouse, "ops", "issues", ["row_number", "column", "rule", "severity"])
    assert sorted(issues) == sorted(
        (r.number, column, rule, severity) for r in expected for column, rule, severity in r.issues
    )
