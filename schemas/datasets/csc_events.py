"""`csc_events`: children's social care involvement of anyone in a trial family."""

from pseudonymise.tokens import IdentifierKind
from schemas import codes
from schemas.contract import Dataset, OnOrAfter, RequiredWhen, code, flag, identifier, service_date

CSC_EVENTS = Dataset(
    name="csc_events",
    description="Children's social care involvement of anyone in a trial family.",
    key=("event_id",),
    fields=(
        identifier("event_id", IdentifierKind.CSC_EVENT, "The LA's event ID; unique in the file."),
        identifier(
            "person_id", IdentifierKind.PERSON, "The person involved; should match `people`."
        ),
        code("event_type", codes.CSC_EVENT_TYPES, "Kind of involvement.", required=True),
        service_date("start_date", "Start of the event.", required=True),
        service_date("end_date", "End of the event."),
        code(
            "referral_source",
            codes.REFERRAL_SOURCES,
            "DfE CIN ReferralSource code; required for a `REFERRAL`.",
        ),
        code("primary_need", codes.PRIMARY_NEEDS, "CIN primary need code `N0`–`N9`."),
        code(
            "category_of_abuse",
            codes.ABUSE_CATEGORIES,
            "Category of abuse; required for a `CP_PLAN`.",
        ),
        code("reason_for_closure", codes.CLOSURE_REASONS, "CIN reason for closure `RC1`–`RC9`."),
        flag("referral_nfa", "The referral led to no further action."),
    ),
    rules=(
        OnOrAfter("end_date", "start_date"),
        RequiredWhen("referral_source", "event_type", ("REFERRAL",)),
        RequiredWhen("category_of_abuse", "event_type", ("CP_PLAN",)),
    ),
)
