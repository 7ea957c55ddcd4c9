"""Reading submitted ZIPs: members, nesting, size limits, corrupt and protected members."""

from __future__ import annotations

import pytest
from reader_files import (
    CANARY,
    KEYWORKER_HEADER,
    _csv,
    _keyworker_sheet,
    _read,
    _rules,
    _xlsx,
    _zip,
)

from schemas.rules import (
    DATASET_REPEATED,
    EMPTY_FILE,
    SHEET_IGNORED,
    UNKNOWN_DATASET,
    UNREADABLE_FILE,
    ZIP_MEMBER_IGNORED,
    ZIP_NESTED,
    ZIP_TOO_LARGE,
    Severity,
)


def test_zip_with_two_csvs() -> None:
    people = _csv("person_id,family_id,role,sex", "P1,F1,CHILD,F")
    workers = _csv(KEYWORKER_HEADER, f"K1,{CANARY},North,KEYWORKER,2024-09-01")
    content = _zip({"returns/": b"", "returns/people.csv": people, "returns/staff.csv": workers})

    result = _read(content)

    assert result.issues == []
    assert [(t.dataset.name, t.source) for t in result.tables] == [
        ("people", "ZIP member 1"),
        ("keyworkers", "ZIP member 2"),
    ]


def test_zip_holding_a_workbook_a_readme_and_mac_litter() -> None:
    content = _zip(
        {
            "__MACOSX/._staff.xlsx": b"\x00\x05\x16\x07" + bytes(100),
            "README.txt": f"Sent by {CANARY}\nCall me".encode(),
            "staff.xlsx": _xlsx({"S": _keyworker_sheet(), "Notes": [(0, 0, CANARY)]}),
            "logo.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
        }
    )

    result = _read(content)

    assert [t.source for t in result.tables] == ["ZIP member 2, sheet 1"]
    assert _rules(result) == [
        (ZIP_MEMBER_IGNORED, Severity.WARNING, "ZIP member 3"),
        (ZIP_MEMBER_IGNORED, Severity.WARNING, "ZIP member 1"),
        (SHEET_IGNORED, Severity.WARNING, "ZIP member 2, sheet 2"),
    ]


def test_zip_with_nothing_recognised() -> None:
    result = _read(_zip({"a.csv": _csv(f"{CANARY},x", "1,2"), "b.bin": bytes(range(256))}))

    assert result.tables == []
    assert _rules(result) == [
        (ZIP_MEMBER_IGNORED, Severity.WARNING, "ZIP member 2"),
        (UNKNOWN_DATASET, Severity.ERROR, "ZIP member 1"),
    ]


@pytest.mark.parametrize("content", [_zip({}), _zip({"folder/": b"", "__MACOSX/._x": b"x"})])
def test_empty_zip(content: bytes) -> None:
    assert _rules(_read(content)) == [(EMPTY_FILE, Severity.ERROR, "")]


def test_zip_without_any_csv_or_xlsx() -> None:
    result = _read(_zip({"scan.pdf": b"%PDF-1.4\x00" + bytes(50)}))

    assert [(i.rule, i.severity) for i in result.issues] == [
        (ZIP_MEMBER_IGNORED, Severity.WARNING),
        (UNREADABLE_FILE, Severity.ERROR),
    ]


@pytest.mark.parametrize(
    "inner",
    [
        _zip({"people.csv": _csv("person_id,family_id,role,sex", "P1,F1,CHILD,F")}),
        b"\x1f\x8b\x08\x00" + bytes(30),
    ],
    ids=["zip", "gzip"],
)
def test_nested_archives_are_refused(inner: bytes) -> None:
    content = _zip(
        {"staff.csv": _csv(KEYWORKER_HEADER, "K1,A,B,KEYWORKER,2024-09-01"), "more.zip": inner}
    )

    result = _read(content)

    assert (ZIP_NESTED, Severity.ERROR, "ZIP member 2") in _rules(result)


def test_zip_bomb_is_refused_by_declared_size() -> None:
    content = _zip({"bomb.csv": b"0" * 5_000_000})

    assert len(content) < 20_000
    assert _rules(_read(content, max_unpacked_bytes=1_000_000)) == [
        (ZIP_TOO_LARGE, Severity.ERROR, "")
    ]


def test_zip_members_together_too_large() -> None:
    members = {f"m{i}.csv": _csv(KEYWORKER_HEADER, *["K1,A,B,C,D"] * 2000) for i in range(4)}
    content = _zip(members)
    one_member = len(members["m0.csv"])

    # Within the budget, every member is read (and the dataset found four times).
    assert [i.rule for i in _read(content, max_unpacked_bytes=4 * one_member).issues] == [
        DATASET_REPEATED
    ]
    assert _rules(_read(content, max_unpacked_bytes=4 * one_member - 1)) == [
        (ZIP_TOO_LARGE, Severity.ERROR, "")
    ]


def _lie_about_size(archive: bytes, real_size: int, claimed_size: int) -> bytes:
    """Rewrite the uncompressed size in the local and central headers of a one-member ZIP."""
    real = real_size.to_bytes(4, "little")
    assert archive.count(real) == 2
    return archive.replace(real, claimed_size.to_bytes(4, "little"))


def test_zip_bomb_lying_about_its_size_is_not_unpacked() -> None:
    real_size = 7_654_321
    content = _lie_about_size(_zip({"bomb.csv": b"1" * real_size}), real_size, 1000)

    result = _read(content, max_unpacked_bytes=100_000)

    assert result.tables == []
    assert [i.rule for i in result.issues] == [UNREADABLE_FILE]


def test_corrupt_zip_is_unreadable() -> None:
    content = _zip({"a.csv": _csv(KEYWORKER_HEADER, "K1,A,B,C,D")})

    result = _read(content[: len(content) // 2])

    assert [i.rule for i in result.issues] == [UNREADABLE_FILE]


def test_password_protected_members_are_reported() -> None:
    content = bytearray(_zip({"a.csv": _csv(KEYWORKER_HEADER, "K1,A,B,C,D")}))
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = content.find(signature)
        content[at + flag_offset] |= 0x1

    result = _read(bytes(content))

    assert _rules(result) == [(UNREADABLE_FILE, Severity.ERROR, "ZIP member 1")]


def test_a_dataset_in_two_files_of_a_zip_rejects_the_whole_zip() -> None:
    people = _csv("person_id,family_id,role,sex", "P1,F1,CHILD,F")
    keyworkers = _csv(KEYWORKER_HEADER, f"KW1,{CANARY},North,KEYWORKER,2024-09-01")
    content = _zip({"a.csv": people, "b.csv": keyworkers, f"{CANARY}.csv": people})

    result = _read(content)

    assert result.tables == []
    assert [(i.rule, i.severity, i.where, i.detail) for i in result.issues] == [
        (
            DATASET_REPEATED,
            Severity.ERROR,
            "ZIP member 1 and ZIP member 3",
            "people is in each of them",
        )
    ]


def test_a_dataset_in_a_workbook_and_a_csv_of_a_zip_rejects_the_whole_zip() -> None:
    content = _zip(
        {
            "staff.xlsx": _xlsx({"Staff": _keyworker_sheet(), "Notes": [(0, 0, CANARY)]}),
            "staff.csv": _csv(KEYWORKER_HEADER, "KW1,,North,KEYWORKER,2024-09-01"),
        }
    )

    result = _read(content)

    assert result.tables == []
    assert (DATASET_REPEATED, "ZIP member 1, sheet 1 and ZIP member 2") in [
        (i.rule, i.where) for i in result.issues
    ]
