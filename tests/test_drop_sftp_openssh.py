"""The SFTP drop against OpenSSH's own sshd (Debian's openssh-server) on loopback.

The asyncssh server in `tests/test_drop_sftp.py` covers the drop's every rule; these tests check
that the same calls work against the server LAs will really use: listing, reading, removing,
the report's posix-rename, and fail-closed host-key pinning. The end-to-end run over sshd is the
`openssh` drop of `tests/test_e2e_matrix.py`.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
from servers import OpenSshSite, generate_key_pair
from test_drop_sftp import CANARY_NAME, _file, _only

from ingest.drop import DropError, compute_fingerprint
from ingest.drop_sftp import (
    HostKeyMismatch,
    HostKeyUnknown,
    RetryPolicy,
    SftpAuthError,
    SftpConfigError,
    SftpConnector,
    SftpDrop,
    SftpTimeouts,
    load_user_key,
    open_sftp_drop,
    parse_sftp_url,
    pinned_host_keys,
)
from pseudonymise.keys import TrialKey

FAST = SftpTimeouts(connect=2, banner=2, auth=5, channel=5, request=10)


@pytest.fixture
def drop(openssh_site: OpenSshSite, key: TrialKey) -> Iterator[SftpDrop]:
    with open_sftp_drop(openssh_site.url, key) as opened:
        yield opened


def _drop_with(url: str, key: TrialKey) -> SftpDrop:
    """One attempt only, configured from the environment: a retry would hide a failure."""
    target = parse_sftp_url(url)
    connector = SftpConnector(
        target, load_user_key(os.environ), pinned_host_keys(target, os.environ), FAST
    )
    return SftpDrop(connector, key, retry=RetryPolicy(attempts=1))


def _fingerprint(key_line: str) -> str:
    """`SHA256:…`, as paramiko (and the service's messages) print a public key line's key."""
    key_type, encoded = key_line.split()[:2]
    return paramiko.PKey.from_type_string(key_type, base64.b64decode(encoded)).fingerprint


def _no_canary_in(error: BaseException) -> None:
    seen: BaseException | None = error
    while seen is not None:
        assert "Smith" not in str(seen)
        seen = seen.__cause__ or seen.__context__


# --- the protocol ------------------------------------------------------------------------


def test_an_inbox_lists_the_delivered_files_of_that_la_only(
    openssh_site: OpenSshSite, drop: SftpDrop, key: TrialKey
) -> None:
    _file(openssh_site, "901/people.csv", b"a,b\n1,2\n", mtime=1_700_000_000)
    _file(openssh_site, "901/services.xlsx", b"xlsx")
    for ignored in ("901/reports/report.txt", "901/.hidden.csv", "902/other-la.csv"):
        _file(openssh_site, ignored, b"x")
    (openssh_site.root / "901" / "link.csv").symlink_to(openssh_site.root / "902/other-la.csv")
    (openssh_site.root / "notes").mkdir()

    listed = drop.list_inbox("901")

    assert drop.la_codes_present() == ["901", "902"]
    assert sorted(obj.name for obj in listed) == ["people.csv", "services.xlsx"]
    people = next(obj for obj in listed if obj.name == "people.csv")
    assert (people.la_code, people.size, people.version) == ("901", 8, "1700000000")
    assert people.fingerprint == compute_fingerprint(key, "901", "people.csv", 8, "1700000000")
    assert drop.list_inbox("903") == []


def test_reading_returns_the_listed_bytes(openssh_site: OpenSshSite, drop: SftpDrop) -> None:
    content = secrets.token_bytes(300_000)  # several SFTP packets
    _file(openssh_site, "901/big.bin", content)

    assert drop.read(_only(drop.list_inbox("901"))) == content


def test_reading_a_vanished_file_names_the_fingerprint_only(
    openssh_site: OpenSshSite, drop: SftpDrop
) -> None:
    path = _file(openssh_site, f"901/{CANARY_NAME}", b"x")
    listed = _only(drop.list_inbox("901"))
    path.unlink()

    with pytest.raises(DropError) as raised:
        drop.read(listed)

    assert (
        str(raised.value) == f"cannot read file {listed.fingerprint} of LA 901: FileNotFoundError"
    )
    _no_canary_in(raised.value)


def test_removing_deletes_the_listed_file_only(openssh_site: OpenSshSite, drop: SftpDrop) -> None:
    _file(openssh_site, "901/people.csv", b"x")
    _file(openssh_site, "901/services.csv", b"y")
    people = next(obj for obj in drop.list_inbox("901") if obj.name == "people.csv")

    drop.remove(people)
    drop.remove(people)  # twice is harmless

    assert [path.name for path in (openssh_site.root / "901").iterdir()] == ["services.csv"]


def test_removing_keeps_a_replacement_uploaded_after_listing(
    openssh_site: OpenSshSite, drop: SftpDrop
) -> None:
    _file(openssh_site, "901/people.csv", b"listed", mtime=1_700_000_000)
    listed = _only(drop.list_inbox("901"))
    path = _file(openssh_site, "901/people.csv", b"corrected", mtime=1_700_000_060)

    drop.remove(listed)

    assert path.read_bytes() == b"corrected"


def test_a_report_replaces_the_last_one_whole(openssh_site: OpenSshSite, drop: SftpDrop) -> None:
    drop.write_report("905", "2025-01-31-report.txt", b"first")
    drop.write_report("905", "2025-01-31-report.txt", b"second")

    folder = openssh_site.root / "905" / "reports"
    assert [path.name for path in folder.iterdir()] == ["2025-01-31-report.txt"]
    assert (folder / "2025-01-31-report.txt").read_bytes() == b"second"
    assert stat.S_IMODE((folder / "2025-01-31-report.txt").stat().st_mode) == 0o640
    assert drop.list_inbox("905") == []


# --- host keys and login -----------------------------------------------------------------


def test_another_pinned_host_key_is_refused(
    openssh_site: OpenSshSite, key: TrialKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    impostor_line = generate_key_pair(tmp_path / "other_host_key")
    monkeypatch.setenv("TRIAL_SFTP_HOST_KEY", impostor_line)
    (openssh_site.root / "901").mkdir()

    with pytest.raises(HostKeyMismatch) as raised:
        _drop_with(openssh_site.url, key).la_codes_present()

    message = str(raised.value)
    assert f"127.0.0.1:{openssh_site.server.port}" in message
    assert "refusing to connect" in message
    assert _fingerprint(impostor_line) in message
    assert _fingerprint(openssh_site.server.host_key_line) in message


def test_a_host_with_no_pinned_key_is_refused(
    openssh_site: OpenSshSite, key: TrialKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A known_hosts file pinning the key for another port only: the server is unknown."""
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:1 {openssh_site.server.host_key_line}\n")
    monkeypatch.delenv("TRIAL_SFTP_HOST_KEY")
    monkeypatch.setenv("TRIAL_SFTP_KNOWN_HOSTS", str(known_hosts))

    with pytest.raises(HostKeyUnknown) as raised:
        _drop_with(openssh_site.url, key).la_codes_present()

    assert "no key is pinned for it: refusing to connect" in str(raised.value)
    assert _fingerprint(openssh_site.server.host_key_line) in str(raised.value)
    assert known_hosts.read_text().count("\n") == 1  # nothing was added


def test_nothing_pinned_refuses_to_start(
    openssh_site: OpenSshSite, key: TrialKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRIAL_SFTP_HOST_KEY")

    with pytest.raises(SftpConfigError, match="needs the server's host key pinned"):
        open_sftp_drop(openssh_site.url, key)


def test_the_real_host_key_from_a_known_hosts_file_is_accepted(
    openssh_site: OpenSshSite, key: TrialKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = openssh_site.server
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{server.port} {server.host_key_line}\n")
    monkeypatch.delenv("TRIAL_SFTP_HOST_KEY")
    monkeypatch.setenv("TRIAL_SFTP_KNOWN_HOSTS", str(known_hosts))
    (openssh_site.root / "901").mkdir()

    with open_sftp_drop(openssh_site.url, key) as drop:
        assert drop.la_codes_present() == ["901"]


def test_a_key_sshd_does_not_authorise_is_refused(
    openssh_site: OpenSshSite, key: TrialKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_key_pair(tmp_path / "unknown_client_key")
    monkeypatch.setenv("TRIAL_SFTP_KEY_FILE", str(tmp_path / "unknown_client_key"))

    with pytest.raises(SftpAuthError, match="refused the login"):
        _drop_with(openssh_site.url, key).la_codes_present()
