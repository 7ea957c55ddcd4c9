"""`score15`: SCORE-15 family outcome measure responses."""

from pseudonymise.tokens import IdentifierKind
from schemas import codes
from schemas.contract import (
    Dataset,
    Field,
    Kind,
    Treatment,
    code,
    dropped,
    identifier,
    service_date,
)

SCORE15_ITEMS = tuple(f"item_{i:02d}" for i in range(1, 16))

# Subscales, scored so that a higher score always means more difficulty. Items of the two
# problem-worded subscales are reversed (6 - answer); strengths items count as answered.
SUBSCALES: dict[str, tuple[tuple[int, ...], bool]] = {
    "strengths_adaptability": ((1, 3, 6, 10, 15), False),
    "overwhelmed_by_difficulties": ((5, 7, 9, 11, 14), True),
    "disrupted_communication": ((2, 4, 8, 12, 13), True),
}

SCORE15 = Dataset(
    name="score15",
    description="SCORE-15 family outcome measure responses.",
    key=("response_id",),
    fields=(
        identifier(
            "response_id", IdentifierKind.RESPONSE, "The LA's response ID; unique in the file."
        ),
        identifier("family_id", IdentifierKind.FAMILY, "The family."),
        identifier(
            "person_id",
            IdentifierKind.PERSON,
            "The respondent, aged 12 or over on `completed_date` (checked across datasets).",
        ),
        service_date("completed_date", "Date the questionnaire was completed.", required=True),
        code(
            "time_point", codes.TIME_POINTS, "When in the episode it was completed.", required=True
        ),
        *(
            Field(
                name=item,
                kind=Kind.INTEGER,
                treatment=Treatment.KEEP,
                description=f"SCORE-15 item {int(item[-2:])}: 1 (describes us very well) to 5 "
                "(not at all); blank = not answered.",
                minimum=1,
                maximum=5,
            )
            for item in SCORE15_ITEMS
        ),
        dropped("describe_family", "Free-text answer."),
        dropped("main_problem", "Free-text answer."),
        dropped("other_comments", "Free-text answer."),
    ),
)
