"""The benchmark's inputs: deterministic synthetic `people` returns, written once and reused.

Every identifier column is filled and about 10% of the rows carry one broken field each,
spread over different columns (`synthetic.bulk.BREAKAGES`). The same size always gives the
same bytes (fixed seeds), so figures from two runs are comparable.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

LA_CODE = "901"
BAD_FRACTION = 0.10
SEED = 20_260_301
XLSX_ROWS = 100_000
_STAMP = "inputs.json"


@dataclass(frozen=True)
class Inputs:
    csv: dict[int, Path]  # rows -> people CSV
    xlsx: Path | None


def parse_size(text: str) -> int:
    """`100k`, `1M`, `5M` or a plain number of rows."""
    text = text.strip()
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    number = text[:-1] if factor > 1 else text
    rows = int(float(number) * factor)
    if rows < 1:
        raise ValueError("a size must be at least one row")
    return rows


def size_label(rows: int) -> str:
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows % 1_000 == 0:
        return f"{rows // 1_000}k"
    return str(rows)


def planned_inputs(folder: Path, sizes: list[int], *, with_xlsx: bool) -> Inputs:
    """Where `prepare_inputs` writes the inputs."""
    csv = {rows: folder / f"people_{size_label(rows)}.csv" for rows in sizes}
    xlsx = folder / f"people_{size_label(XLSX_ROWS)}.xlsx" if with_xlsx else None
    return Inputs(csv=csv, xlsx=xlsx)


def prepare_inputs(folder: Path, sizes: list[int], *, with_xlsx: bool) -> Inputs:
    """Write whichever inputs are missing (or were written with other parameters)."""
    from synthetic import write_people_csv

    folder.mkdir(parents=True, exist_ok=True)
    stamp = _read_stamp(folder)
    csv: dict[int, Path] = {}
    for rows in sizes:
        path = folder / f"people_{size_label(rows)}.csv"
        key = _stamp_key(path.name, rows)
        if not path.exists() or stamp.get(path.name) != key:
            write_people_csv(
                path, rows, seed=SEED + rows, bad_fraction=BAD_FRACTION, la_code=LA_CODE
            )
            stamp[path.name] = key
        csv[rows] = path
    xlsx = None
    if with_xlsx:
        xlsx = folder / f"people_{size_label(XLSX_ROWS)}.xlsx"
        key = _stamp_key(xlsx.name, XLSX_ROWS)
        if not xlsx.exists() or stamp.get(xlsx.name) != key:
            _write_people_xlsx(folder, xlsx)
            stamp[xlsx.name] = key
    (folder / _STAMP).write_text(json.dumps(stamp, indent=2, sort_keys=True), encoding="utf-8")
    return Inputs(csv=csv, xlsx=xlsx)


def _stamp_key(name: str, rows: int) -> str:
    return f"{name}|rows={rows}|seed={SEED + rows}|bad={BAD_FRACTION}|la={LA_CODE}"


def _read_stamp(folder: Path) -> dict[str, str]:
    path = folder / _STAMP
    if not path.exists():
        return {}
    loaded = json.loads(path.read_text(encoding="utf-8"))
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def _write_people_xlsx(folder: Path, path: Path) -> None:
    """The 100k-row return as one worksheet of text cells (what a case system exports)."""
    import polars as pl
    import xlsxwriter  # type: ignore[import-untyped]

    from synthetic import write_people_csv

    source = folder / f"people_{size_label(XLSX_ROWS)}_for_xlsx.csv"
    write_people_csv(source, XLSX_ROWS, seed=SEED + XLSX_ROWS, bad_fraction=BAD_FRACTION)
    frame = pl.read_csv(source, infer_schema=False)
    source.unlink()
    with xlsxwriter.Workbook(str(path), {"constant_memory": True}) as workbook:
        sheet = workbook.add_worksheet("people")
        sheet.write_row(0, 0, frame.columns)
        for number, row in enumerate(frame.iter_rows(), start=1):
            sheet.write_row(number, 0, ["" if cell is None else cell for cell in row])


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.inputs FOLDER SIZE... [--xlsx]`: write the inputs (run by
    `benchmarks.run` in a child process, so that its own memory stays small)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inputs")
    parser.add_argument("folder", type=Path)
    parser.add_argument("sizes", nargs="+", type=parse_size)
    parser.add_argument("--xlsx", action="store_true")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    prepare_inputs(args.folder, args.sizes, with_xlsx=args.xlsx)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
