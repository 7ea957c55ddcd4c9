"""`episodes`: early help episodes, one per family per period of work."""

from pseudonymise.tokens import IdentifierKind
from schemas import codes
from schemas.contract import (
    Dataset,
    Field,
    Kind,
    OnOrAfter,
    RequiredWhen,
    Treatment,
    code,
    dropped,
    flag,
    identifier,
    service_date,
)

EPISODES = Dataset(
    name="episodes",
    description="Early help episodes: one per family per period of work.",
    key=("episode_id",),
    fields=(
        identifier(
            "episode_id", IdentifierKind.EPISODE, "The LA's episode ID; unique in the file."
        ),
        identifier(
            "family_id", IdentifierKind.FAMILY, "The family worked with; should match `people`."
        ),
        identifier(
            "keyworker_id", IdentifierKind.KEYWORKER, "The key worker; should match `keyworkers`."
        ),
        Field(
            name="team",
            kind=Kind.TEXT,
            treatment=Treatment.KEEP,
            description="The key worker team's name.",
            max_length=100,
        ),
        service_date("referral_date", "Date of the referral to early help.", required=True),
        code("referral_source", codes.REFERRAL_SOURCES, "DfE CIN ReferralSource code."),
        service_date("start_date", "Start of the episode.", required=True),
        service_date("assessment_date", "Date of the assessment."),
        service_date("plan_date", "Date of the family plan."),
        service_date("end_date", "End of the episode."),
        code("end_reason", codes.END_REASONS, "Why the episode ended; required with `end_date`."),
        *(
            flag(f"need_{need}", f"Headline outcome need identified at assessment: {need}.")
            for need in codes.NEEDS
        ),
        dropped("notes", "Case notes (free text)."),
    ),
    rules=(
        OnOrAfter("start_date", "referral_date"),
        OnOrAfter("assessment_date", "start_date"),
        OnOrAfter("plan_date", "assessment_date"),
        OnOrAfter("end_date", "start_date"),
        RequiredWhen("end_reason", "end_date"),
    ),
)
