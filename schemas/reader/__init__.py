"""Reading a submitted file into raw tables: one per dataset found, every cell still text.

The file's type is sniffed from its content, never its name (`signatures`, `file`); a ZIP is a
workbook or a ZIP of returns (`zip_archive`, `workbook`), unpacked against a budget
(`unpacking`), a workbook's XML checked against bounds before calamine opens it
(`workbook_bounds`, `usual_cells`); anything else is read as CSV (`csv_file`). Each *unit*
(a CSV file, or one sheet of a workbook) whose header row is recognised becomes one
`RawTable` (`grid`, `units`); a dataset in two units rejects the file. A large plain CSV can
also be read a slice at a time (`csv_slices`).

No value from the file reaches an issue, an exception or a log: issues name units, rows by
number and columns by letter. Errors raised by the CSV and XLSX libraries can quote the file, so
they are caught and replaced, never passed on (`library_errors`).
"""

from schemas.reader.csv_slices import WholeFileNeeded
from schemas.reader.file import read_submission

__all__ = ["WholeFileNeeded", "read_submission"]
