"""Small invented word lists the synthetic trial draws its names, places and sentences from.

Everything here is made up. Accented names are deliberately spelt with characters that Windows-1252
can encode, so that an LA exporting from Excel in that encoding is realistic rather than lossy.
"""

from __future__ import annotations

# Twelve fictional English local authorities; none is the name of a real council.
LA_NAMES = (
    "Eastmoor",
    "Harbury Vale",
    "Corrington",
    "Fellhaven",
    "Marlstone",
    "Penwarden",
    "Ravensholt",
    "Saltmere",
    "Wyckham Downs",
    "Lowerby",
    "Quenbridge",
    "Ashcombe Fen",
)

FIRST_NAMES_F = (
    "Amelia", "Olivia", "Isla", "Ava", "Mia", "Grace", "Poppy", "Ella", "Lily", "Freya",
    "Ruby", "Evie", "Hannah", "Leah", "Megan", "Chloe", "Sophie", "Aisha", "Maryam", "Priya",
    "Keira", "Tia", "Nadia", "Carys", "Ffion", "Niamh", "Aoife", "Bethan", "Jade", "Kayleigh",
)  # fmt: skip
FIRST_NAMES_M = (
    "Oliver", "George", "Harry", "Noah", "Jack", "Leo", "Arthur", "Oscar", "Charlie", "Jacob",
    "Alfie", "Freddie", "Thomas", "Joshua", "Ryan", "Liam", "Kyle", "Connor", "Mohammed", "Yusuf",
    "Ibrahim", "Arjun", "Dylan", "Rhys", "Callum", "Kieran", "Darren", "Wayne", "Lewis", "Owen",
)  # fmt: skip
# Names that need more than ASCII; all encodable in Windows-1252.
ACCENTED_NAMES_F = ("Zoë", "Siân", "Renée", "Chloé", "Anaïs", "Élodie", "Sinéad", "Róisín")
ACCENTED_NAMES_M = ("Seán", "Rhodri Siôn", "José", "Loïc", "Joël", "André", "Tomás", "Dónal")

LAST_NAMES = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
    "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall",
    "Thomas", "Clarke", "Jackson", "Wood", "Harris", "Edwards", "Turner", "Martin", "Cooper",
    "Hill", "Ward", "Hughes", "Moore", "Khan", "Hussain", "Begum", "Ali", "Kowalski", "Nowak",
    "O'Brien", "McCarthy", "Okafor", "Mensah", "Campbell", "Murray", "Lewis", "Shaw",
)  # fmt: skip
ACCENTED_LAST_NAMES = ("Müller", "Lefèvre", "Ó Briain", "Pérez", "Gonçalves")

STREETS = (
    "Mill Lane", "Church Street", "Station Road", "Victoria Road", "Park Avenue", "Rowan Close",
    "Meadow Way", "Orchard Drive", "Kingfisher Court", "Chapel Row", "Heather Grove",
    "Willow Crescent", "Brook Street", "Foundry Walk", "Quarry Hill", "Larch Gardens",
)  # fmt: skip
LOCALITIES = ("Northside", "Old Town", "Riverside", "Upper Green", "Southfield", "Moorend")

# Real-format postcode areas (first letters of the outward code), so that a strict checker that
# knows the list of areas accepts them; districts and inward codes are random.
POSTCODE_AREAS = (
    "LS", "BD", "HX", "WF", "DN", "S", "NG", "DE", "LE", "CV", "B", "WS", "ST", "CW", "M", "OL",
    "BL", "WN", "PR", "BB", "LA", "CA", "DL", "TS", "NE", "SR", "YO", "HU", "LN", "PE",
)  # fmt: skip
# Letters allowed in the inward code (no C, I, K, M, O, V).
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
# The pseudo-postcode for "no fixed abode / unknown".
NO_FIXED_ABODE_POSTCODE = "ZZ99 3VZ"

TEAM_SUFFIXES = (
    "North Early Help",
    "South Early Help",
    "Family Help Hub",
    "Central Family Support",
)

CASE_NOTES = (
    "Family engaged well with the plan this month.",
    "Home visit completed; next review agreed with parent.",
    "School attendance discussed with the family and the school.",
    "Agreed to meet again after half term.",
    "Family asked for support with a housing application.",
    "Referred to the local food bank; family paid £20 towards uniform.",
    "Genogram completed with the family at the second visit.",
    "Parent reported things are calmer at home.",
    "Keyworker liaised with the health visitor.",
    "Plan reviewed; two goals met, one carried forward.",
)  # fmt: skip
DESCRIBE_FAMILY = (
    "We are close but argue a lot.",
    "Busy, noisy and mostly happy.",
    "We try our best for each other.",
    "Things have been hard since the move.",
    "We get on better than we used to.",
)  # fmt: skip
MAIN_PROBLEM = (
    "Money worries.",
    "Getting the children to school on time.",
    "Arguments at bedtime.",
    "Not enough space in the flat.",
    "Nothing major at the moment.",
)  # fmt: skip
OTHER_COMMENTS = (
    "The keyworker has been helpful.",
    "Would like more evening appointments.",
    "No other comments.",
    "Thank you for listening.",
)  # fmt: skip
WORKBOOK_NOTES = (
    "Extract produced from the case management system.",
    "All records in the trial window up to the extract date.",
    "Contact the early help data team with any questions.",
)  # fmt: skip
