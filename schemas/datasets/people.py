"""`people`: everyone in a family that the early help service works with."""

from pseudonymise.tokens import IdentifierKind
from schemas import codes
from schemas.contract import (
    ChildAgeInTrial,
    Dataset,
    Field,
    Kind,
    OnlyWhenBlank,
    OnOrAfter,
    RequiredUnless,
    RequiredWhen,
    Treatment,
    code,
    dropped,
    identifier,
)

PEOPLE = Dataset(
    name="people",
    description="Everyone in a family that the early help service works with.",
    key=("person_id",),
    fields=(
        identifier(
            "person_id",
            IdentifierKind.PERSON,
            "The LA's person ID; unique in the file.",
            aliases=("LAchildID", "child_id", "person_ref"),
        ),
        identifier("family_id", IdentifierKind.FAMILY, "The LA's family ID."),
        code("role", codes.PERSON_ROLES, "The person's role in the family.", required=True),
        dropped("first_name", "First name.", aliases=("forename",)),
        dropped("last_name", "Last name.", aliases=("surname",)),
        dropped("other_names", "Other names."),
        dropped("address_line_1", "Address line 1."),
        dropped("address_line_2", "Address line 2."),
        dropped("address_line_3", "Address line 3."),
        dropped("address_line_4", "Address line 4."),
        Field(
            name="postcode",
            kind=Kind.POSTCODE,
            treatment=Treatment.COARSEN,
            description="UK postcode; pseudo-postcodes `ZZ99 …` mean unknown or no fixed abode. "
            "Stored as the postcode district (outward code) only.",
        ),
        Field(
            name="date_of_birth",
            kind=Kind.DATE,
            treatment=Treatment.COARSEN,
            description="Date of birth; not in the future. Stored as the month of birth.",
            aliases=("PersonBirthDate", "dob"),
            not_in_future=True,
        ),
        Field(
            name="expected_date_of_birth",
            kind=Kind.DATE,
            treatment=Treatment.COARSEN,
            description="Expected date of birth of an unborn child. Stored as the month.",
        ),
        code(
            "sex",
            codes.SEXES,
            "Sex: `F`, `M` or `U`; the CIN census codes 1 (M), 2 (F), 0 and 9 (U) are accepted.",
            required=True,
            aliases=("GenderCurrent", "gender"),
            code_map=codes.CIN_GENDER_CODES,
        ),
        code("ethnicity", codes.ETHNICITIES, "DfE CIN ethnicity code.", aliases=("ethnic_group",)),
        Field(
            name="nhs_number",
            kind=Kind.NHS_NUMBER,
            treatment=Treatment.TOKEN,
            description="NHS number: 10 digits, spaces allowed, modulus 11 check. Tokenised "
            "without LA scope so a child known to two LAs links; a number failing its check is "
            "a warning and is stored as a null token.",
            token_kind=IdentifierKind.NHS_NUMBER,
        ),
        Field(
            name="upn",
            kind=Kind.UPN,
            treatment=Treatment.TOKEN,
            description="Unique Pupil Number: 13 characters with the DfE check letter (temporary "
            "UPNs end in a letter). Tokenised without LA scope; a UPN failing its check is a "
            "warning and is stored as a null token.",
            token_kind=IdentifierKind.UPN,
        ),
        code(
            "upn_unknown",
            codes.UPN_UNKNOWN_CODES,
            "Why the UPN is unknown (`UN1`–`UN7`); only when `upn` is blank.",
        ),
        Field(
            name="disability",
            kind=Kind.CODES,
            treatment=Treatment.KEEP,
            description="`;`-separated disability codes.",
            codes=codes.DISABILITIES,
        ),
        Field(
            name="date_of_death",
            kind=Kind.DATE,
            treatment=Treatment.COARSEN,
            description="Date of death; not before the date of birth. Stored as the month.",
        ),
    ),
    rules=(
        RequiredUnless("date_of_birth", "role", ("UNBORN",)),
        RequiredWhen("expected_date_of_birth", "role", ("UNBORN",)),
        ChildAgeInTrial(),
        OnlyWhenBlank("upn_unknown", "upn"),
        OnOrAfter("date_of_death", "date_of_birth"),
    ),
)
