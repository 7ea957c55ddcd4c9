"""Every rule the service reports, with the plain words an LA data officer reads.

Reports name a row, a column and one of these rules; they never repeat a value from the file.
Cross-field rules (`schemas.contract.RowRule`) describe themselves; their names are built there.
"""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"  # the row (or, at file level, the file) is rejected
    WARNING = "warning"  # the row loads; the LA is told


# Row-level rules on one cell.
REQUIRED = "required"
MAX_LENGTH = "max_length"
CODE_LIST = "code_list"
DATE_FORMAT = "date_format"
DATE_AMBIGUOUS = "date_ambiguous"
DATE_OUT_OF_BOUNDS = "date_out_of_bounds"
CONTROL_CHARACTER = "control_character"
FLAG_FORMAT = "flag_format"
INTEGER_FORMAT = "integer_format"
NUMBER_FORMAT = "number_format"
OUT_OF_RANGE = "out_of_range"
NOT_IN_FUTURE = "not_in_future"
DUPLICATE_KEY = "duplicate_key"
# Row-level warnings: the row loads with a null token or district for that field.
NHS_NUMBER_CHECK = "nhs_number_check"
UPN_CHECK = "upn_check"
POSTCODE_FORMAT = "postcode_format"
# Cross-dataset warnings (per LA, in the warehouse).
ORPHAN = "orphan"

# File-level rules.
UNREADABLE_FILE = "unreadable_file"
EMPTY_FILE = "empty_file"
UNKNOWN_DATASET = "unknown_dataset"
AMBIGUOUS_DATASET = "ambiguous_dataset"
LA_CODE_MISMATCH = "la_code_mismatch"
ZIP_NESTED = "zip_nested"
ZIP_TOO_LARGE = "zip_too_large"
XLSX_OUT_OF_BOUNDS = "xlsx_out_of_bounds"
DATASET_REPEATED = "dataset_repeated"
NO_VALID_ROWS = "no_valid_rows"
# File-level warnings.
UNKNOWN_COLUMN = "unknown_column"
SHEET_IGNORED = "sheet_ignored"
ZIP_MEMBER_IGNORED = "zip_member_ignored"

RULE_TEXT: dict[str, str] = {
    REQUIRED: "is required but blank",
    MAX_LENGTH: "is longer than allowed",
    CODE_LIST: "is not one of the allowed codes",
    DATE_FORMAT: "is not a date in YYYY-MM-DD or DD/MM/YYYY form",
    DATE_AMBIGUOUS: "is a date that can be read more than one way (use a four-digit year)",
    DATE_OUT_OF_BOUNDS: "is a date before 1900 or after 2099, which cannot be right",
    CONTROL_CHARACTER: "holds a hidden control character (such as a NUL byte): remove it",
    FLAG_FORMAT: "is not Y/N (Yes/No, TRUE/FALSE, 1/0 are accepted)",
    INTEGER_FORMAT: "is not a whole number",
    NUMBER_FORMAT: "is not a number",
    OUT_OF_RANGE: "is outside the allowed range",
    NOT_IN_FUTURE: "is in the future",
    DUPLICATE_KEY: "repeats a key used on another row of this file (every such row is rejected)",
    NHS_NUMBER_CHECK: "fails the NHS number check (stored as unknown)",
    UPN_CHECK: "fails the UPN check letter or format (stored as unknown)",
    POSTCODE_FORMAT: "is not a UK postcode (stored as unknown)",
    ORPHAN: "refers to a record not found in the LA's other returns",
    UNREADABLE_FILE: "the file is not a readable CSV, XLSX or ZIP",
    EMPTY_FILE: "the file has no header or no data rows",
    UNKNOWN_DATASET: "the header row matches no dataset of the specification",
    AMBIGUOUS_DATASET: "the header row matches more than one dataset",
    LA_CODE_MISMATCH: "the file's LA code column differs from the LA whose drop it came from",
    ZIP_NESTED: "the ZIP holds another archive; nesting is not accepted",
    ZIP_TOO_LARGE: "the ZIP's unpacked content is larger than allowed",
    XLSX_OUT_OF_BOUNDS: (
        "the workbook has cells too far down or across, or too much text, to be read safely; "
        "delete the unused rows and columns, or save the data as CSV"
    ),
    DATASET_REPEATED: (
        "the file holds the same dataset more than once (on two sheets or in two files); "
        "send each dataset once, so it is clear which copy is the return"
    ),
    NO_VALID_ROWS: "no row of the dataset passed validation, so earlier data is kept",
    UNKNOWN_COLUMN: "a column was not recognised and was ignored",
    SHEET_IGNORED: "a sheet's header row was not recognised and the sheet was ignored",
    ZIP_MEMBER_IGNORED: "a file in the ZIP was not CSV or XLSX and was ignored",
}
