"""Code lists shared by more than one dataset (TRIAL_DATA_SPEC.md)."""

# DfE CIN census ReferralSource.
REFERRAL_SOURCES = (
    "1A", "1B", "1C", "1D", "2A", "2B", "3A", "3B", "3C", "3D", "3E", "3F",
    "4", "5A", "5B", "5C", "5D", "6", "7", "8", "9", "10",
)  # fmt: skip

# DfE CIN census ethnicity codes.
ETHNICITIES = (
    "WBRI", "WIRI", "WIRT", "WOTH", "WROM", "MWBC", "MWBA", "MWAS", "MOTH", "AIND",
    "APKN", "ABAN", "AOTH", "BCRB", "BAFR", "BOTH", "CHNE", "OOTH", "REFU", "NOBT",
)  # fmt: skip

DISABILITIES = (
    "NONE", "MOB", "HAND", "PC", "INC", "COMM", "LD", "HEAR", "VIS", "BEH", "CON", "AUT", "DDA",
)  # fmt: skip

SEXES = ("F", "M", "U")
# The CIN census GenderCurrent codes, accepted in the `sex` column.
CIN_GENDER_CODES = {"1": "M", "2": "F", "0": "U", "9": "U"}

PERSON_ROLES = ("CHILD", "PARENT_CARER", "OTHER_ADULT", "UNBORN")
UPN_UNKNOWN_CODES = tuple(f"UN{i}" for i in range(1, 8))

END_REASONS = (
    "NEEDS_MET", "STEP_UP_CSC", "STEP_DOWN_UNIVERSAL", "DISENGAGED",
    "DECLINED", "MOVED_OUT_OF_AREA", "TRANSFERRED", "OTHER",
)  # fmt: skip

# The ten Supporting Families headline outcomes, identified at assessment.
NEEDS = (
    "education", "early_years", "health", "substance_use", "family_relationships",
    "child_safety", "crime", "domestic_abuse", "housing", "financial",
)  # fmt: skip

CSC_EVENT_TYPES = ("REFERRAL", "ASSESSMENT", "S47", "ICPC", "CIN_PLAN", "CP_PLAN", "CLA")
PRIMARY_NEEDS = tuple(f"N{i}" for i in range(10))
ABUSE_CATEGORIES = ("NEG", "PHY", "SAB", "EMO", "MUL")
CLOSURE_REASONS = tuple(f"RC{i}" for i in range(1, 10))

KEYWORKER_ROLES = (
    "KEYWORKER", "SENIOR_KEYWORKER", "TEAM_MANAGER", "SYSTEMIC_PRACTITIONER", "SYSTEMIC_CHAMPION",
)  # fmt: skip
SYSTEMIC_TRAINING_LEVELS = ("NONE", "FOUNDATION", "INTERMEDIATE", "QUALIFIED")

ACTIVITY_TYPES = (
    "SYSTEMIC_TRAINING_DAY", "CHAMPION_TRAINING_DAY", "GROUP_REFLECTIVE_PRACTICE",
    "ONE_TO_ONE_CONSULTATION", "HUB_EVENT", "GENOGRAM", "OUTCOME_MEASURE_REVIEW",
)  # fmt: skip

TIME_POINTS = ("BASELINE", "MID", "CLOSURE", "FOLLOW_UP")

ARMS = ("SYSTEMIC", "CONTROL")
