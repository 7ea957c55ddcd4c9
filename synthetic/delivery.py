"""How each LA delivers its return: encodings, headers, date and flag habits, workbooks.

Every habit here is one the specification says the service must accept. A clean trial
(`mess=False`) delivers everything in the plain form: UTF-8 CSV, canonical headers, ISO dates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from schemas.datasets import DATASETS
from synthetic.ids import IdStyle

_T = TypeVar("_T")


class DateStyle(StrEnum):
    ISO = "iso"  # 2025-03-05
    UK = "uk"  # 05/03/2025
    UK_WITH_TIME = "uk_with_time"  # 05/03/2025 00:00, as Excel writes a date-time cell to CSV


class HeaderStyle(StrEnum):
    SNAKE = "snake"  # date_of_birth
    TITLE = "title"  # Date Of Birth
    CAMEL = "camel"  # DateOfBirth
    UPPER = "upper"  # DATE_OF_BIRTH


FLAG_WORDS: tuple[tuple[str, str], ...] = (("Y", "N"), ("Yes", "No"), ("TRUE", "FALSE"), ("1", "0"))
# Free-text and contact columns some systems do not export at all.
OMITTABLE = ("other_names", "address_line_3", "address_line_4", "email", "phone", "other_comments")
# Date columns a workbook may hold as real Excel dates rather than text.
EXCEL_DATE_CANDIDATES = (
    "date_of_birth",
    "referral_date",
    "start_date",
    "completed_date",
    "activity_date",
)


@dataclass(frozen=True)
class Delivery:
    encoding: str = "utf-8"  # of CSV files: "utf-8", "utf-8-sig" (with BOM) or "cp1252"
    line_end: str = "\n"
    date_style: DateStyle = DateStyle.ISO
    flag_words: tuple[str, str] = ("Y", "N")
    header_style: HeaderStyle = HeaderStyle.SNAKE
    # (dataset, canonical field) -> the alias written in the header instead
    aliases: dict[tuple[str, str], str] = field(default_factory=dict)
    lower_codes: bool = False
    spaced_nhs_numbers: bool = False
    compact_postcodes: bool = False
    id_style: IdStyle = IdStyle.PREFIXED
    la_code_header: str | None = None  # an extra column carrying the LA's own code
    omitted: frozenset[str] = frozenset()
    column_order_seed: int | None = None  # columns in a random order rather than the spec's
    workbook_datasets: tuple[str, ...] = ()  # delivered as sheets of one XLSX workbook
    excel_date_fields: frozenset[str] = frozenset()
    notes_sheet_first: bool = False
    file_naming: int = 0

    @property
    def cin_gender_codes(self) -> bool:
        """An LA exporting the CIN census `gender` column uses its codes 1, 2 and 9."""
        return ("people", "sex") in self.aliases


def choose_deliveries(
    rng: random.Random, la_codes: list[str], *, mess: bool
) -> dict[str, Delivery]:
    """One delivery per LA; with `mess`, every accepted habit appears in at least one LA."""
    if not mess:
        return {code: Delivery() for code in la_codes}
    count = len(la_codes)
    encodings = _dealt(rng, count, ["cp1252"] * 3 + ["utf-8-sig"] * 3, "utf-8")
    date_styles = _dealt(rng, count, [DateStyle.UK] * 5 + [DateStyle.UK_WITH_TIME], DateStyle.ISO)
    flags = _dealt(rng, count, list(FLAG_WORDS) * 3, FLAG_WORDS[0])
    headers = _dealt(rng, count, list(HeaderStyle) * 3, HeaderStyle.SNAKE)
    id_styles = _dealt(rng, count, list(IdStyle) * 4, IdStyle.PREFIXED)
    aliased = _dealt(rng, count, [True] * (count // 2), False)
    # Workbooks go to LAs whose CSVs are not Windows-1252, so that encoding always shows in a CSV.
    workbooks = set(
        rng.sample([i for i in range(count) if encodings[i] != "cp1252"], rng.randint(2, 3))
    )
    deliveries = {}
    for index, code in enumerate(la_codes):
        deliveries[code] = Delivery(
            encoding=encodings[index],
            line_end="\r\n" if encodings[index] != "utf-8" else rng.choice(("\n", "\r\n")),
            date_style=date_styles[index],
            flag_words=flags[index],
            header_style=headers[index],
            aliases=_aliases(rng) if aliased[index] else {},
            lower_codes=rng.random() < 0.15,
            spaced_nhs_numbers=rng.random() < 0.25,
            compact_postcodes=rng.random() < 0.15,
            id_style=id_styles[index],
            la_code_header=rng.choice(("LA", "la_code")) if rng.random() < 0.2 else None,
            omitted=frozenset(rng.sample(OMITTABLE, rng.randint(1, 3)))
            if rng.random() < 0.3
            else frozenset(),
            column_order_seed=rng.randrange(2**32) if rng.random() < 0.2 else None,
            workbook_datasets=_workbook_datasets(rng) if index in workbooks else (),
            excel_date_fields=frozenset(rng.sample(EXCEL_DATE_CANDIDATES, rng.randint(2, 5))),
            notes_sheet_first=rng.random() < 0.5,
            file_naming=rng.randrange(3),
        )
    return deliveries


def _dealt(rng: random.Random, count: int, special: list[_T], usual: _T) -> list[_T]:
    """`count` values: the special ones (as many as fit) and the usual one, in random order."""
    values = special[:count] + [usual] * max(0, count - len(special))
    rng.shuffle(values)
    return values


def _aliases(rng: random.Random) -> dict[tuple[str, str], str]:
    """Most of the aliases the specification lists, each LA its own pick."""
    chosen = {}
    for dataset in DATASETS.values():
        for spec_field in dataset.fields:
            if spec_field.aliases and rng.random() < 0.7:
                chosen[(dataset.name, spec_field.name)] = rng.choice(spec_field.aliases)
    return chosen


def _workbook_datasets(rng: random.Random) -> tuple[str, ...]:
    chosen = set(rng.sample(list(DATASETS), rng.randint(3, len(DATASETS))))
    return tuple(name for name in DATASETS if name in chosen)


def header_text(dataset: str, field_name: str, delivery: Delivery) -> str:
    alias = delivery.aliases.get((dataset, field_name))
    if alias is not None:
        return alias
    words = field_name.split("_")
    if delivery.header_style is HeaderStyle.SNAKE:
        return field_name
    if delivery.header_style is HeaderStyle.UPPER:
        return field_name.upper()
    words = [_ACRONYMS.get(word, word.capitalize()) for word in words]
    return ("" if delivery.header_style is HeaderStyle.CAMEL else " ").join(words)


_ACRONYMS = {"id": "ID", "nhs": "NHS", "upn": "UPN", "fte": "FTE", "nfa": "NFA", "csc": "CSC"}
