"""The local-folder drop: listing, reading, removal, reports and file fingerprints."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.storage.drop import (
    REPORTS_FOLDER,
    Drop,
    DropError,
    DropObject,
    DropObjectChanged,
    LocalFolderDrop,
    compute_fingerprint,
    is_delivered_file_name,
    open_drop,
)
from pseudonymise.keys import TrialKey

KEY = TrialKey(b"k" * 32)
OTHER_KEY = TrialKey(b"o" * 32)
LA_NAME = "Smith family people Q1.csv"  # a file name an LA might choose: never to be shown


@pytest.fixture
def root(tmp_path: Path) -> Path:
    drop_root = tmp_path / "drop"
    (drop_root / "201").mkdir(parents=True)
    return drop_root


@pytest.fixture
def drop(root: Path) -> LocalFolderDrop:
    return LocalFolderDrop(root, KEY)


def put(root: Path, la_code: str, name: str, content: bytes = b"a,b\n1,2\n") -> Path:
    path = root / la_code / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def only(drop: LocalFolderDrop, la_code: str = "201") -> DropObject:
    (obj,) = drop.list_inbox(la_code)
    return obj


# --- listing ---


def test_inbox_lists_delivered_files_only(drop: LocalFolderDrop, root: Path) -> None:
    put(root, "201", LA_NAME)
    put(root, "201", "episodes.xlsx")
    for in_progress in (".hidden.csv", "~$episodes.xlsx", "upload.csv.part", "x.filepart"):
        put(root, "201", in_progress)
    put(root, "201", f"{REPORTS_FOLDER}/earlier-report.txt")
    (root / "201" / "subfolder").mkdir()
    put(root, "201", "subfolder/nested.csv")
    (root / "201" / "link.csv").symlink_to(root / "201" / "episodes.xlsx")

    listed = drop.list_inbox("201")

    assert sorted(obj.name for obj in listed) == sorted([LA_NAME, "episodes.xlsx"])
    assert all(obj.la_code == "201" for obj in listed)


def test_listed_object_carries_size_version_and_fingerprint(
    drop: LocalFolderDrop, root: Path
) -> None:
    path = put(root, "201", LA_NAME, b"12345")

    obj = only(drop)

    assert obj.size == 5
    assert obj.version == str(path.stat().st_mtime_ns)
    assert obj.fingerprint == drop.fingerprint(obj)


def test_an_la_without_an_inbox_has_nothing(drop: LocalFolderDrop) -> None:
    assert drop.list_inbox("999") == []


def test_la_codes_present_are_three_digit_folders(drop: LocalFolderDrop, root: Path) -> None:
    (root / "305").mkdir()
    (root / "notes").mkdir()
    (root / "1234").mkdir()
    (root / "402").write_bytes(b"a file, not an inbox")

    assert drop.la_codes_present() == ["201", "305"]


def test_la_code_that_is_not_three_digits_is_refused(drop: LocalFolderDrop) -> None:
    with pytest.raises(ValueError, match="three digits"):
        drop.list_inbox("../201")


@pytest.mark.parametrize(
    ("name", "delivered"),
    [
        ("people.csv", True),
        ("returns.zip", True),
        (".people.csv", False),
        ("~$people.xlsx", False),
        ("people.csv.part", False),
        ("people.csv.PART", False),
        ("people.csv.filepart", False),
        ("people.csv.crdownload", False),
    ],
)
def test_delivered_file_names(name: str, delivered: bool) -> None:
    assert is_delivered_file_name(name) is delivered


# --- reading and removal ---


def test_read_returns_the_listed_bytes(drop: LocalFolderDrop, root: Path) -> None:
    put(root, "201", LA_NAME, b"person_id\nP1\n")

    assert drop.read(only(drop)) == b"person_id\nP1\n"


def test_read_refuses_a_file_changed_since_listing(drop: LocalFolderDrop, root: Path) -> None:
    path = put(root, "201", LA_NAME, b"first")
    obj = only(drop)
    path.write_bytes(b"second, longer upload")

    with pytest.raises(DropObjectChanged) as raised:
        drop.read(obj)

    assert LA_NAME not in str(raised.value)
    assert obj.fingerprint in str(raised.value)


def test_read_error_names_neither_file_nor_path(drop: LocalFolderDrop, root: Path) -> None:
    path = put(root, "201", LA_NAME)
    obj = only(drop)
    path.unlink()

    with pytest.raises(DropError) as raised:
        drop.read(obj)

    assert LA_NAME not in str(raised.value)
    assert raised.value.__context__ is None
    assert raised.value.__cause__ is None


def test_remove_deletes_the_listed_file(drop: LocalFolderDrop, root: Path) -> None:
    path = put(root, "201", LA_NAME)
    obj = only(drop)

    drop.remove(obj)
    drop.remove(obj)  # removing again is harmless

    assert not path.exists()
    assert drop.list_inbox("201") == []


def test_remove_keeps_a_newer_upload_under_the_same_name(drop: LocalFolderDrop, root: Path) -> None:
    path = put(root, "201", LA_NAME, b"first")
    obj = only(drop)
    path.write_bytes(b"corrected and longer")

    drop.remove(obj)

    assert path.read_bytes() == b"corrected and longer"
    assert only(drop).fingerprint != obj.fingerprint


def test_object_repr_hides_the_file_name(drop: LocalFolderDrop, root: Path) -> None:
    put(root, "201", LA_NAME)

    obj = only(drop)

    assert LA_NAME not in repr(obj)
    assert LA_NAME not in str(obj)


# --- reports ---


def test_report_is_written_to_the_reports_folder(drop: LocalFolderDrop, root: Path) -> None:
    drop.write_report("201", "201-abc-report.txt", b"accepted: 10 rows")

    report = root / "201" / REPORTS_FOLDER / "201-abc-report.txt"
    assert report.read_bytes() == b"accepted: 10 rows"
    assert stat.S_IMODE(report.stat().st_mode) == 0o640
    assert os.listdir(report.parent) == ["201-abc-report.txt"]  # no temporary file left
    assert drop.list_inbox("201") == []  # a report is never taken for a delivered file


def test_report_replaces_an_earlier_one_whole(drop: LocalFolderDrop, root: Path) -> None:
    drop.write_report("201", "report.txt", b"first version, quite long")
    drop.write_report("201", "report.txt", b"second")

    assert (root / "201" / REPORTS_FOLDER / "report.txt").read_bytes() == b"second"


def test_report_for_a_new_la_creates_its_folders(drop: LocalFolderDrop, root: Path) -> None:
    drop.write_report("402", "report.txt", b"rejected")

    assert (root / "402" / REPORTS_FOLDER / "report.txt").read_bytes() == b"rejected"


@pytest.mark.parametrize("name", ["../escape.txt", "sub/report.txt", ".hidden", "", "a..b"])
def test_report_names_must_be_plain(drop: LocalFolderDrop, name: str) -> None:
    with pytest.raises(ValueError, match="report name"):
        drop.write_report("201", name, b"x")


def test_failed_report_write_leaves_no_temporary_file(
    drop: LocalFolderDrop, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_replace(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)

    with pytest.raises(OSError, match="disk full"):
        drop.write_report("201", "report.txt", b"content")

    assert os.listdir(root / "201" / REPORTS_FOLDER) == []


# --- fingerprints ---


def test_fingerprint_changes_with_size_and_with_mtime(drop: LocalFolderDrop, root: Path) -> None:
    path = put(root, "201", LA_NAME, b"12345")
    first = only(drop)
    os.utime(path, ns=(first.size, int(first.version) + 1_000_000_000))
    touched = only(drop)
    path.write_bytes(b"123456")
    os.utime(path, ns=(0, int(touched.version)))
    resized = only(drop)

    assert touched.version != first.version
    assert resized.version == touched.version and resized.size != touched.size
    assert len({first.fingerprint, touched.fingerprint, resized.fingerprint}) == 3


def test_fingerprint_is_stable_and_keyed(root: Path) -> None:
    put(root, "201", LA_NAME)

    first = only(LocalFolderDrop(root, KEY))
    again = only(LocalFolderDrop(root, KEY))
    other_key = only(LocalFolderDrop(root, OTHER_KEY))

    assert first.fingerprint == again.fingerprint
    assert first.fingerprint != other_key.fingerprint


def test_fingerprint_differs_between_las(drop: LocalFolderDrop, root: Path) -> None:
    put(root, "201", LA_NAME)
    put(root, "305", LA_NAME)
    mtime = os.stat(root / "201" / LA_NAME).st_mtime_ns
    os.utime(root / "305" / LA_NAME, ns=(mtime, mtime))

    assert only(drop, "201").fingerprint != only(drop, "305").fingerprint


names = st.text(min_size=1, max_size=60).filter(lambda n: "/" not in n)
sizes = st.integers(min_value=0, max_value=2**40)
versions = st.integers(min_value=0, max_value=2**63).map(str)


@given(name=names, size=sizes, version=versions)
def test_fingerprint_is_24_hex_characters(name: str, size: int, version: str) -> None:
    fingerprint = compute_fingerprint(KEY, "201", name, size, version)

    assert re.fullmatch(r"[0-9a-f]{24}", fingerprint)


@given(name=names, size=sizes, version=versions, other_size=sizes, other_version=versions)
def test_fingerprint_separates_sizes_and_versions(
    name: str, size: int, version: str, other_size: int, other_version: str
) -> None:
    same = (size, version) == (other_size, other_version)
    first = compute_fingerprint(KEY, "201", name, size, version)
    second = compute_fingerprint(KEY, "201", name, other_size, other_version)

    assert (first == second) is same


# --- opening a drop by URL ---


def test_open_drop_from_a_path_or_file_url(root: Path) -> None:
    put(root, "201", LA_NAME)

    for url in (str(root), f"file://{root}", root.as_uri()):
        drop: Drop = open_drop(url, KEY)
        assert isinstance(drop, LocalFolderDrop)
        assert [obj.name for obj in drop.list_inbox("201")] == [LA_NAME]


def test_open_drop_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DropError, match="does not exist"):
        open_drop(str(tmp_path / "missing"), KEY)


def test_open_drop_refuses_an_unknown_scheme_without_echoing_the_url() -> None:
    with pytest.raises(ValueError, match="unsupported scheme 'ftp'") as raised:
        open_drop("ftp://user:secret-password@host/drop", KEY)

    assert "secret-password" not in str(raised.value)


def test_open_drop_refuses_a_remote_file_url() -> None:
    with pytest.raises(ValueError, match="local path"):
        open_drop("file://otherhost/drop", KEY)


def test_read_does_not_follow_a_file_swapped_for_a_link(
    drop: LocalFolderDrop, root: Path, tmp_path: Path
) -> None:
    path = put(root, "201", LA_NAME, b"12345")
    obj = only(drop)
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"SECRET")
    path.unlink()
    path.symlink_to(outside)

    with pytest.raises(DropError) as raised:
        drop.read(obj)

    assert LA_NAME not in str(raised.value)
