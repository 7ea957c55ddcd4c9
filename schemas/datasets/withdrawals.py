"""`withdrawals`: families or people who have withdrawn from the evaluation."""

from pseudonymise.tokens import IdentifierKind
from schemas.contract import Dataset, OneRequired, identifier, service_date

WITHDRAWALS = Dataset(
    name="withdrawals",
    description="Families or people who have withdrawn from the evaluation. A withdrawal removes "
    "every row of that person or family from the clean and analysis tables and from every later "
    "load.",
    key=("person_id", "family_id"),
    fields=(
        identifier("person_id", IdentifierKind.PERSON, "The person withdrawn.", required=False),
        identifier("family_id", IdentifierKind.FAMILY, "The family withdrawn.", required=False),
        service_date("withdrawal_date", "Date of the withdrawal.", required=True),
    ),
    rules=(OneRequired(("person_id", "family_id")),),
)
