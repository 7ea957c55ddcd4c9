"""`keyworkers`: the workforce delivering early help."""

from pseudonymise.tokens import IdentifierKind
from schemas import codes
from schemas.contract import (
    Dataset,
    Field,
    Kind,
    OnOrAfter,
    Treatment,
    code,
    dropped,
    flag,
    identifier,
    service_date,
)

KEYWORKERS = Dataset(
    name="keyworkers",
    description="The workforce delivering early help.",
    key=("keyworker_id",),
    fields=(
        identifier(
            "keyworker_id", IdentifierKind.KEYWORKER, "The LA's worker ID; unique in the file."
        ),
        dropped("first_name", "First name.", aliases=("forename",)),
        dropped("last_name", "Last name.", aliases=("surname",)),
        dropped("email", "Work email address."),
        dropped("phone", "Work phone number."),
        Field(
            name="team",
            kind=Kind.TEXT,
            treatment=Treatment.KEEP,
            description="The key worker team's name.",
            max_length=100,
        ),
        code("role", codes.KEYWORKER_ROLES, "The worker's role.", required=True),
        Field(
            name="fte",
            kind=Kind.NUMBER,
            treatment=Treatment.KEEP,
            description="Full-time equivalent, more than 0 and at most 1.",
            minimum=0,
            minimum_exclusive=True,
            maximum=1,
        ),
        service_date("start_date", "Start in the early help service.", required=True),
        service_date("end_date", "End in the early help service."),
        flag("social_work_qualified", "The worker is a qualified social worker."),
        code(
            "systemic_training",
            codes.SYSTEMIC_TRAINING_LEVELS,
            "Highest level of systemic practice training.",
        ),
    ),
    rules=(OnOrAfter("end_date", "start_date"),),
)
