"""The vocabulary in which the data contract (TRIAL_DATA_SPEC.md) is written down as data.

Each dataset in `schemas/datasets/` is one `Dataset` built from these types. The reader, the
pseudonymiser step, the pandera models, the data dictionary, the synthetic generator and the LA
checker are all driven from those declarations, so they cannot disagree with one another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from pseudonymise.tokens import IdentifierKind

TRIAL_START = date(2024, 9, 1)
TRIAL_END = date(2025, 12, 31)
ID_MAX_LENGTH = 36


class Kind(StrEnum):
    """How a raw text cell is parsed."""

    IDENTIFIER = "identifier"  # text <= 36, becomes a keyed token
    TEXT = "text"  # free or direct-identifying text
    CODE = "code"  # one value from a code list
    CODES = "codes"  # ';'-separated values from a code list
    DATE = "date"
    FLAG = "flag"  # Y/N
    INTEGER = "integer"
    NUMBER = "number"
    NHS_NUMBER = "nhs_number"
    UPN = "upn"
    POSTCODE = "postcode"


class Treatment(StrEnum):
    """What happens to a field after parsing (the spec's "treatment" column)."""

    TOKEN = "token"  # noqa: S105 (a treatment name, not a secret): keyed HMAC pseudonym
    DROP = "drop"  # never stored anywhere past parsing
    COARSEN = "coarsen"  # dates to the month, postcodes to the outward code
    KEEP = "keep"


@dataclass(frozen=True)
class Field:
    """One column of a dataset as the LA sends it."""

    name: str
    kind: Kind
    treatment: Treatment
    description: str
    required: bool = False
    aliases: tuple[str, ...] = ()
    max_length: int | None = None
    codes: tuple[str, ...] = ()
    # Extra spellings of codes, e.g. the CIN gender codes 1 -> M. Keys are normalised codes.
    code_map: dict[str, str] = field(default_factory=dict)
    minimum: float | None = None
    minimum_exclusive: bool = False
    maximum: float | None = None
    token_kind: IdentifierKind | None = None
    # For dates: inclusive bounds that are not cross-field (e.g. the trial window).
    earliest: date | None = None
    latest: date | None = None
    not_in_future: bool = False

    @property
    def stored_name(self) -> str:
        """The column's name in the warehouse, or '' when the field is dropped."""
        if self.treatment is Treatment.DROP:
            return ""
        if self.treatment is Treatment.TOKEN:
            stem = self.name[: -len("_id")] if self.name.endswith("_id") else self.name
            return f"{stem}_token"
        if self.treatment is Treatment.COARSEN:
            return {
                "date_of_birth": "month_of_birth",
                "expected_date_of_birth": "expected_month_of_birth",
                "date_of_death": "month_of_death",
                "postcode": "postcode_district",
            }[self.name]
        return self.name


@dataclass(frozen=True)
class OnOrAfter:
    """`later` must not be before `earlier` when both are present."""

    later: str
    earlier: str

    @property
    def rule(self) -> str:
        return f"on_or_after_{self.earlier}"

    @property
    def column(self) -> str:
        return self.later

    def describe(self) -> str:
        return f"`{self.later}` is on or after `{self.earlier}`"


@dataclass(frozen=True)
class RequiredWhen:
    """`target` is required when `condition_field` is present, or equals one of `equals`."""

    target: str
    condition_field: str
    equals: tuple[str, ...] = ()

    @property
    def rule(self) -> str:
        if self.equals:
            return f"required_when_{self.condition_field}_{'_or_'.join(self.equals).lower()}"
        return f"required_when_{self.condition_field}"

    @property
    def column(self) -> str:
        return self.target

    def describe(self) -> str:
        if self.equals:
            values = " or ".join(f"`{v}`" for v in self.equals)
            return f"`{self.target}` is required when `{self.condition_field}` is {values}"
        return f"`{self.target}` is required when `{self.condition_field}` is given"


@dataclass(frozen=True)
class RequiredUnless:
    """`target` is required unless `condition_field` equals one of `equals`."""

    target: str
    condition_field: str
    equals: tuple[str, ...]

    @property
    def rule(self) -> str:
        return f"required_unless_{self.condition_field}_{'_or_'.join(self.equals).lower()}"

    @property
    def column(self) -> str:
        return self.target

    def describe(self) -> str:
        values = " or ".join(f"`{v}`" for v in self.equals)
        return f"`{self.target}` is required unless `{self.condition_field}` is {values}"


@dataclass(frozen=True)
class OnlyWhenBlank:
    """`target` may be given only when `other` is blank."""

    target: str
    other: str

    @property
    def rule(self) -> str:
        return f"only_when_{self.other}_blank"

    @property
    def column(self) -> str:
        return self.target

    def describe(self) -> str:
        return f"`{self.target}` is given only when `{self.other}` is blank"


@dataclass(frozen=True)
class OneRequired:
    """At least one of `fields` is required."""

    fields: tuple[str, ...]

    @property
    def rule(self) -> str:
        return f"one_of_{'_or_'.join(self.fields)}_required"

    @property
    def column(self) -> str:
        return self.fields[0]

    def describe(self) -> str:
        return "at least one of " + ", ".join(f"`{f}`" for f in self.fields) + " is required"


@dataclass(frozen=True)
class ChildAgeInTrial:
    """A person whose `role_field` is `role` is under 18 at some time in the trial window.

    Read as: their 18th birthday falls after the window opens. A child who turns 18 during the
    trial was still a child while the family was worked with.
    """

    role_field: str = "role"
    role: str = "CHILD"
    birth_field: str = "date_of_birth"

    @property
    def rule(self) -> str:
        return "child_under_18_in_trial_window"

    @property
    def column(self) -> str:
        return self.birth_field

    def describe(self) -> str:
        return (
            f"a `{self.role}` is under 18 at some time in the trial window "
            f"({TRIAL_START.isoformat()} to {TRIAL_END.isoformat()})"
        )


RowRule = OnOrAfter | RequiredWhen | RequiredUnless | OnlyWhenBlank | OneRequired | ChildAgeInTrial


@dataclass(frozen=True)
class Dataset:
    """One dataset of the contract: its fields, its key and its cross-field row rules."""

    name: str
    description: str
    key: tuple[str, ...]  # unique within one file; a duplicated key rejects every row carrying it
    fields: tuple[Field, ...]
    rules: tuple[RowRule, ...] = ()

    def field(self, name: str) -> Field:
        for candidate in self.fields:
            if candidate.name == name:
                return candidate
        raise KeyError(name)

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Columns a header must carry for the file to be recognised as this dataset."""
        return tuple(f.name for f in self.fields if f.required)

    @property
    def stored_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.treatment is not Treatment.DROP)


_HEADER_NOISE = re.compile(r"[\s_\-.]+")


def normalise_header(name: str) -> str:
    """Header matching ignores case, spaces, underscores, hyphens and dots (and a BOM)."""
    return _HEADER_NOISE.sub("", name.replace("\ufeff", "")).lower()


def normalise_code(value: str) -> str:
    """Codes are case-insensitive and surrounding white space is ignored."""
    return value.strip().upper()


def identifier(
    name: str,
    kind: IdentifierKind,
    description: str,
    *,
    required: bool = True,
    aliases: tuple[str, ...] = (),
) -> Field:
    """A local identifier: text of at most 36 characters, stored only as a keyed token."""
    return Field(
        name=name,
        kind=Kind.IDENTIFIER,
        treatment=Treatment.TOKEN,
        description=description,
        required=required,
        aliases=aliases,
        max_length=ID_MAX_LENGTH,
        token_kind=kind,
    )


def dropped(name: str, description: str, *, aliases: tuple[str, ...] = ()) -> Field:
    """A direct identifier or free text: accepted in the file, never stored."""
    return Field(
        name=name,
        kind=Kind.TEXT,
        treatment=Treatment.DROP,
        description=description,
        aliases=aliases,
    )


def code(
    name: str,
    codes: tuple[str, ...],
    description: str,
    *,
    required: bool = False,
    aliases: tuple[str, ...] = (),
    code_map: dict[str, str] | None = None,
) -> Field:
    return Field(
        name=name,
        kind=Kind.CODE,
        treatment=Treatment.KEEP,
        description=description,
        required=required,
        aliases=aliases,
        codes=codes,
        code_map=code_map or {},
    )


def service_date(name: str, description: str, *, required: bool = False, **bounds: date) -> Field:
    """A service event's date: kept exactly, because the trial's outcomes are measured with it."""
    return Field(
        name=name,
        kind=Kind.DATE,
        treatment=Treatment.KEEP,
        description=description,
        required=required,
        earliest=bounds.get("earliest"),
        latest=bounds.get("latest"),
    )


def flag(name: str, description: str) -> Field:
    return Field(name=name, kind=Kind.FLAG, treatment=Treatment.KEEP, description=description)


# Every dataset may carry the LA's own code; a value that differs from the drop rejects the file.
LA_CODE_COLUMN = "la_code"
LA_CODE_ALIASES = ("la", "lacode", "la_code", "local_authority_code", "la_number", "lea")
