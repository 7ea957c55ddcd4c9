"""`practice_activity`: training, reflective practice and systemic tools (fidelity)."""

from pseudonymise.tokens import IdentifierKind
from schemas import codes
from schemas.contract import (
    TRIAL_END,
    TRIAL_START,
    Dataset,
    Field,
    Kind,
    Treatment,
    code,
    identifier,
    service_date,
)

PRACTICE_ACTIVITY = Dataset(
    name="practice_activity",
    description="Training, reflective practice and systemic tools: the fidelity record.",
    key=("activity_id",),
    fields=(
        identifier(
            "activity_id", IdentifierKind.ACTIVITY, "The LA's activity ID; unique in the file."
        ),
        identifier(
            "keyworker_id", IdentifierKind.KEYWORKER, "The worker; should match `keyworkers`."
        ),
        code("activity_type", codes.ACTIVITY_TYPES, "Kind of activity.", required=True),
        service_date(
            "activity_date",
            "Date of the activity; within the trial window.",
            required=True,
            earliest=TRIAL_START,
            latest=TRIAL_END,
        ),
        Field(
            name="duration_minutes",
            kind=Kind.INTEGER,
            treatment=Treatment.KEEP,
            description="Duration in whole minutes, 0 to 600.",
            minimum=0,
            maximum=600,
        ),
        identifier(
            "family_id",
            IdentifierKind.FAMILY,
            "The family, for activity about one family.",
            required=False,
        ),
    ),
)
