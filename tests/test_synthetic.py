"""The synthetic trial generator: determinism, shape, validity, and the planted problems."""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import fastexcel
import pytest

from pseudonymise.identifiers import nhs_number_is_valid, postcode_is_valid, upn_is_valid
from schemas import rules
from schemas.contract import (
    LA_CODE_ALIASES,
    TRIAL_START,
    Dataset,
    OnOrAfter,
    RequiredWhen,
    normalise_code,
    normalise_header,
)
from schemas.datasets import DATASETS
from schemas.rules import Severity
from synthetic import DropFile, PlantedIssue, TrialManifest, generate_trial
from synthetic.trial import build_trial

SEED = 20240901


@pytest.fixture(scope="module")
def trial_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trial")
    generate_trial(out, seed=SEED)
    return out


@pytest.fixture(scope="module")
def manifest(trial_dir: Path) -> TrialManifest:
    return TrialManifest.load(trial_dir)


# --- reading the drop back, as simply as possible ------------------------------------------


@dataclass(frozen=True)
class FileRow:
    row_number: int
    cells: dict[str, str]  # canonical field -> text ("" when blank)


def read_dataset(trial_dir: Path, drop_file: DropFile, dataset: str) -> list[FileRow]:
    """One dataset of a dropped file as canonical columns of text, by spreadsheet row number."""
    header, body = _raw_rows(trial_dir / drop_file.path, drop_file.sheets.get(dataset))
    columns = [_canonical(DATASETS[dataset], name) for name in header]
    return [
        FileRow(number, {c: v for c, v in zip(columns, values, strict=True) if c})
        for number, values in enumerate(body, start=2)
    ]


def _raw_rows(path: Path, sheet: str | None) -> tuple[list[str], list[list[str]]]:
    if sheet is None:
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("cp1252")
        header, *body = list(csv.reader(io.StringIO(text, newline="")))
        return header, body
    frame = (
        fastexcel.read_excel(path)
        .load_sheet_by_name(sheet, header_row=0, dtypes="string")
        .to_polars()
    )
    return frame.columns, [[v or "" for v in row] for row in frame.iter_rows()]


def _canonical(dataset: Dataset, header: str) -> str:
    wanted = normalise_header(header)
    for spec in dataset.fields:
        if wanted in {normalise_header(n) for n in (spec.name, *spec.aliases)}:
            return spec.name
    assert wanted in {normalise_header(a) for a in LA_CODE_ALIASES}, "unexpected column"
    return ""


def every_table(
    trial_dir: Path, manifest: TrialManifest
) -> Iterator[tuple[DropFile, str, list[FileRow]]]:
    for drop_file in manifest.files:
        for dataset in drop_file.datasets:
            yield drop_file, dataset, read_dataset(trial_dir, drop_file, dataset)


def file_date(text: str) -> date | None:
    for pattern in ("%Y-%m-%d", "%d/%m/%Y", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    return None


# --- determinism -------------------------------------------------------------------------


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    generate_trial(tmp_path / "a", seed=11, families_per_la=6)
    generate_trial(tmp_path / "b", seed=11, families_per_la=6)
    first, second = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert any(name.endswith(".xlsx") for name in first)
    assert first == second


def test_different_seeds_write_different_trials(tmp_path: Path) -> None:
    generate_trial(tmp_path / "a", seed=11, families_per_la=6)
    generate_trial(tmp_path / "b", seed=12, families_per_la=6)
    assert _digests(tmp_path / "a") != _digests(tmp_path / "b")


def test_refuses_to_write_over_an_earlier_drop(tmp_path: Path) -> None:
    generate_trial(tmp_path, seed=1, families_per_la=2, mess=False)
    with pytest.raises(FileExistsError):
        generate_trial(tmp_path, seed=2, families_per_la=2, mess=False)


# --- allocation and files ----------------------------------------------------------------


def test_allocation_has_twelve_fictional_las_six_in_each_arm(trial_dir: Path) -> None:
    text = (trial_dir / "allocation.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "la_code,la_name,arm,randomised_on"
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["la_code"] for r in rows] == [str(code) for code in range(901, 913)]
    assert Counter(r["arm"] for r in rows) == {"SYSTEMIC": 6, "CONTROL": 6}
    assert len({r["la_name"] for r in rows}) == 12
    assert all(date.fromisoformat(r["randomised_on"]) < TRIAL_START for r in rows)


def test_allocation_depends_on_the_seed() -> None:
    arms = set()
    for seed in range(4):
        trial = build_trial(seed=seed, families_per_la=1, mess=False)
        arms.add(tuple(entry.arm for entry in trial.allocation))
    assert len(arms) > 1


def test_every_la_delivers_every_dataset(trial_dir: Path, manifest: TrialManifest) -> None:
    for entry in manifest.allocation:
        files = manifest.files_of(entry.la_code)
        delivered = [d for f in files for d in f.datasets]
        assert sorted(delivered) == sorted(DATASETS)
        for drop_file in files:
            assert (trial_dir / drop_file.path).is_file()
            assert drop_file.path.startswith(f"drop/{entry.la_code}/")
            assert all(drop_file.rows[d] > 0 for d in drop_file.datasets)


def test_files_hold_the_rows_the_manifest_counts(trial_dir: Path, manifest: TrialManifest) -> None:
    for drop_file, dataset, rows in every_table(trial_dir, manifest):
        assert len(rows) == drop_file.rows[dataset]
        assert all(cells for cells in (r.cells for r in rows))


def test_default_size_is_a_few_thousand_rows(manifest: TrialManifest) -> None:
    total = sum(sum(f.rows.values()) for f in manifest.files)
    assert 2_000 <= total <= 10_000


def test_messy_trial_shows_every_delivery_habit(trial_dir: Path, manifest: TrialManifest) -> None:
    workbooks = [f for f in manifest.files if f.path.endswith(".xlsx")]
    assert 2 <= len(workbooks) <= 3
    for workbook in workbooks:
        assert "Notes" in fastexcel.read_excel(trial_dir / workbook.path).sheet_names
    csv_bytes = [(trial_dir / f.path).read_bytes() for f in manifest.files if f not in workbooks]
    assert any(b.startswith(b"\xef\xbb\xbf") for b in csv_bytes)
    windows_1252 = [b.decode("cp1252") for b in csv_bytes if not _is_utf8(b)]
    assert windows_1252 and all(set(text) & set("£ëâéíóôïñü") for text in windows_1252)
    headers = {h for b in csv_bytes for h in _header(b)}
    assert headers & {"LAchildID", "child_id", "person_ref"}
    assert "Person ID" in headers or "PersonID" in headers or "PERSON_ID" in headers
    dates = [c for b in csv_bytes for c in _first_row(b)]
    assert any(file_date(c) and "/" in c for c in dates)
    assert any(file_date(c) and "-" in c for c in dates)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _header(data: bytes) -> list[str]:
    text = data.decode("utf-8-sig") if _is_utf8(data) else data.decode("cp1252")
    return next(csv.reader(io.StringIO(text)))


def _first_row(data: bytes) -> list[str]:
    text = data.decode("utf-8-sig") if _is_utf8(data) else data.decode("cp1252")
    reader = csv.reader(io.StringIO(text))
    next(reader)
    return next(reader)


def test_clean_trial_is_plain_csv_with_no_problems(tmp_path: Path) -> None:
    manifest = generate_trial(tmp_path, seed=5, families_per_la=4, mess=False)
    assert manifest.issues == ()
    for drop_file in manifest.files:
        assert drop_file.path.endswith(".csv")
        data = (tmp_path / drop_file.path).read_bytes()
        assert _is_utf8(data) and not data.startswith(b"\xef\xbb\xbf")
        assert _header(data) == [f.name for f in DATASETS[drop_file.datasets[0]].fields]


def test_manifest_round_trips_and_holds_no_values(trial_dir: Path, manifest: TrialManifest) -> None:
    assert TrialManifest.from_json(manifest.to_json()) == manifest
    text = (trial_dir / "manifest.json").read_text(encoding="utf-8")
    for _, dataset, rows in every_table(trial_dir, manifest):
        if dataset == "people":
            for row in rows[:20]:
                for column in ("person_id", "nhs_number", "last_name", "postcode"):
                    value = row.cells.get(column, "")
                    assert len(value) < 4 or value not in text


# --- validity of what was generated -------------------------------------------------------


def test_identifiers_are_valid_except_the_planted_ones(
    trial_dir: Path, manifest: TrialManifest
) -> None:
    checks = {"nhs_number": nhs_number_is_valid, "upn": upn_is_valid, "postcode": postcode_is_valid}
    planted = {(i.path, i.row_number, i.column) for i in manifest.issues}
    seen = Counter[str]()
    for drop_file, dataset, rows in every_table(trial_dir, manifest):
        if dataset != "people":
            continue
        for row in rows:
            for column, is_valid in checks.items():
                value = row.cells.get(column, "")
                if value:
                    seen[column] += 1
                    spoiled = (drop_file.path, row.row_number, column) in planted
                    assert is_valid(value) is not spoiled
    assert min(seen.values()) > 100


def test_planted_issues_point_at_the_cell_they_describe(
    trial_dir: Path, manifest: TrialManifest
) -> None:
    tables = {(f.path, d): rows for f, d, rows in every_table(trial_dir, manifest)}
    for issue in manifest.issues:
        rows = tables[(issue.path, issue.dataset)]
        assert 2 <= issue.row_number <= len(rows) + 1
        row = rows[issue.row_number - 2]
        assert row.row_number == issue.row_number
        _assert_cell_breaks_rule(issue, row.cells, rows)


def _assert_cell_breaks_rule(
    issue: PlantedIssue, cells: dict[str, str], rows: list[FileRow]
) -> None:
    spec = DATASETS[issue.dataset].field(issue.column)
    text = cells.get(issue.column, "")
    if issue.rule == rules.REQUIRED or issue.rule.startswith("required_when"):
        assert text == ""
    elif issue.rule == rules.MAX_LENGTH:
        assert spec.max_length is not None and len(text) > spec.max_length
    elif issue.rule == rules.CODE_LIST:
        assert normalise_code(text) not in (*spec.codes, *spec.code_map)
    elif issue.rule == rules.DATE_FORMAT:
        assert text and file_date(text) is None
    elif issue.rule == rules.OUT_OF_RANGE:
        assert spec.maximum is not None and float(text) > spec.maximum
    elif issue.rule == rules.NHS_NUMBER_CHECK:
        assert not nhs_number_is_valid(text)
    elif issue.rule == rules.UPN_CHECK:
        assert not upn_is_valid(text)
    elif issue.rule == rules.DUPLICATE_KEY:
        assert sum(r.cells.get(issue.column) == text for r in rows) >= 2
    else:
        rule = next(
            r
            for r in DATASETS[issue.dataset].rules
            if r.rule == issue.rule and r.column == issue.column
        )
        assert isinstance(rule, OnOrAfter)
        later, earlier = file_date(text), file_date(cells[rule.earlier])
        assert later is not None and earlier is not None and later < earlier


def test_every_kind_of_problem_is_planted(manifest: TrialManifest) -> None:
    found = Counter(i.rule for i in manifest.issues)
    wanted = {
        rules.NHS_NUMBER_CHECK, rules.UPN_CHECK, rules.REQUIRED, rules.DUPLICATE_KEY,
        rules.CODE_LIST, rules.DATE_FORMAT, rules.MAX_LENGTH, rules.OUT_OF_RANGE,
        OnOrAfter("end_date", "start_date").rule,
        RequiredWhen("category_of_abuse", "event_type", ("CP_PLAN",)).rule,
    }  # fmt: skip
    assert wanted <= set(found)
    assert len({i.la_code for i in manifest.issues}) == 12
    assert len({i.dataset for i in manifest.issues}) >= 6
    warnings = {rules.NHS_NUMBER_CHECK, rules.UPN_CHECK}
    assert all((i.severity == Severity.WARNING) is (i.rule in warnings) for i in manifest.issues)


def test_duplicated_keys_list_every_row_that_carries_them(manifest: TrialManifest) -> None:
    duplicates = Counter(
        (i.path, i.dataset) for i in manifest.issues if i.rule == rules.DUPLICATE_KEY
    )
    assert duplicates and all(count == 2 for count in duplicates.values())


def test_at_most_one_problem_per_row(manifest: TrialManifest) -> None:
    rows = Counter((i.path, i.dataset, i.row_number) for i in manifest.issues)
    assert max(rows.values()) == 1
