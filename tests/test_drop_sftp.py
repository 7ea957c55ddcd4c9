"""The SFTP drop against a real SFTP server on loopback (asyncssh, in a background thread)."""

from __future__ import annotations

import base64
import gc
import logging
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import paramiko
import pytest
from hypothesis import given
from hypothesis import strategies as st
from servers import (
    OpenSshSite,
    SftpServer,
    SftpSite,
    SilentTcpServer,
    free_port,
    public_key_line,
    write_private_key,
)

from ingest.settings import Settings, SftpSettings
from ingest.storage.drop import DropError, DropObject, DropObjectChanged, compute_fingerprint
from ingest.storage.drop.sftp import RetryPolicy, SftpDrop, open_sftp_drop
from ingest.storage.drop.sftp_connection import (
    HostKeyMismatch,
    HostKeyUnknown,
    SftpAuthError,
    SftpConfigError,
    SftpConnector,
    SftpTimeouts,
    SftpUnavailable,
    load_user_key,
    parse_sftp_url,
    pinned_host_keys,
)
from pseudonymise.keys import TrialKey

CANARY_NAME = "Smith_Jane_1985-03-14_9434765919.csv"
FAST = SftpTimeouts(connect=2, banner=0.3, auth=2, channel=2, request=5)


@pytest.fixture
def drop(sftp_site: SftpSite, key: TrialKey) -> Iterator[SftpDrop]:
    with open_sftp_drop(sftp_site.url, key, _sftp()) as opened:
        yield opened


class Sleeps:
    """Stands in for time.sleep: records the waits, optionally acts on the first one."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _drop_with(
    url: str, key: TrialKey, *, attempts: int = 3, sleep: Sleeps | None = None
) -> SftpDrop:
    """A drop with fast timeouts and a recorded sleep, configured from the environment."""
    target = parse_sftp_url(url)
    connector = SftpConnector(
        target, load_user_key(_sftp().key_file), pinned_host_keys(target, _sftp()), FAST
    )
    return SftpDrop(connector, key, retry=RetryPolicy(attempts=attempts), sleep=sleep or Sleeps())


def _file(
    site: SftpSite | OpenSshSite, relative: str, content: bytes, mtime: int | None = None
) -> Path:
    """A file as an LA would have uploaded it into its folder on the server."""
    path = site.root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _only(objects: list[DropObject]) -> DropObject:
    assert len(objects) == 1
    return objects[0]


def _assert_no_name_in(error: BaseException) -> None:
    seen: BaseException | None = error
    while seen is not None:
        assert "Smith" not in str(seen)
        seen = seen.__cause__ or seen.__context__
    assert error.__cause__ is None
    assert error.__context__ is None


# --- the protocol: against asyncssh in process and OpenSSH's sshd ----------------------------


@pytest.fixture(params=["asyncssh", "openssh"])
def any_site(request: pytest.FixtureRequest) -> SftpSite | OpenSshSite:
    """A fresh drop folder on either server: the protocol must work the same on both."""
    name = "sftp_site" if request.param == "asyncssh" else "openssh_site"
    site: SftpSite | OpenSshSite = request.getfixturevalue(name)
    return site


@pytest.fixture
def any_drop(any_site: SftpSite | OpenSshSite, key: TrialKey) -> Iterator[SftpDrop]:
    with open_sftp_drop(any_site.url, key, _sftp()) as opened:
        yield opened


def test_the_inbox_lists_regular_delivered_files_only(
    any_site: SftpSite | OpenSshSite, any_drop: SftpDrop, key: TrialKey
) -> None:
    _file(any_site, "901/people.csv", b"a,b\n1,2\n", mtime=1_700_000_000)
    _file(any_site, "901/services.xlsx", b"xlsx")
    for ignored in (
        "901/reports/report.txt",
        "901/archive/old.csv",
        "901/.hidden.csv",
        "901/~$people.xlsx",
        "901/upload.csv.filepart",
        "902/other-la.csv",
    ):
        _file(any_site, ignored, b"x")
    (any_site.root / "901" / "link.csv").symlink_to(any_site.root / "902" / "other-la.csv")

    listed = any_drop.list_inbox("901")

    assert sorted(obj.name for obj in listed) == ["people.csv", "services.xlsx"]
    people = next(obj for obj in listed if obj.name == "people.csv")
    assert (people.la_code, people.size, people.version) == ("901", 8, "1700000000")
    assert people.fingerprint == compute_fingerprint(key, "901", "people.csv", 8, "1700000000")
    assert any_drop.fingerprint(people) == people.fingerprint


def test_la_codes_are_three_digit_folders(
    any_site: SftpSite | OpenSshSite, any_drop: SftpDrop
) -> None:
    for folder in ("901", "902/reports", "9010", "abc"):
        (any_site.root / folder).mkdir(parents=True)
    _file(any_site, "903", b"a file, not a folder")

    assert any_drop.la_codes_present() == ["901", "902"]
    assert any_drop.list_inbox("904") == []


def test_reading_returns_the_listed_bytes(
    any_site: SftpSite | OpenSshSite, any_drop: SftpDrop
) -> None:
    content = secrets.token_bytes(300_000)  # several SFTP packets
    _file(any_site, "901/big.bin", content)

    assert any_drop.read(_only(any_drop.list_inbox("901"))) == content


def test_a_new_mtime_is_a_new_object(any_site: SftpSite | OpenSshSite, any_drop: SftpDrop) -> None:
    path = _file(any_site, "901/people.csv", b"first", mtime=1_700_000_000)
    first = _only(any_drop.list_inbox("901"))
    _file(any_site, "901/people.csv", b"other", mtime=1_700_000_060)
    second = _only(any_drop.list_inbox("901"))

    assert path.stat().st_size == first.size == second.size
    assert first.fingerprint != second.fingerprint


def test_reading_a_replaced_file_refuses(
    any_site: SftpSite | OpenSshSite, any_drop: SftpDrop
) -> None:
    _file(any_site, f"901/{CANARY_NAME}", b"listed", mtime=1_700_000_000)
    listed = _only(any_drop.list_inbox("901"))
    _file(any_site, f"901/{CANARY_NAME}", b"replaced", mtime=1_700_000_060)

    with pytest.raises(DropObjectChanged) as raised:
        any_drop.read(listed)
    assert listed.fingerprint in str(raised.value)
    _assert_no_name_in(raised.value)


def test_reading_a_vanished_file_names_the_fingerprint_only(
    any_site: SftpSite | OpenSshSite, any_drop: SftpDrop
) -> None:
    path = _file(any_site, f"901/{CANARY_NAME}", b"x")
    listed = _only(any_drop.list_inbox("901"))
    path.unlink()

    with pytest.raises(DropError) as raised:
        any_drop.read(listed)
    assert str(raised.value) == (
        f"cannot read file {listed.fingerprint} of LA 901: FileNotFoundError"
    )
    _assert_no_name_in(raised.value)


def test_removing_deletes_the_listed_file_only(
    any_site: SftpSite | OpenSshSite, any_drop: SftpDrop
) -> None:
    _file(any_site, "901/people.csv", b"x")
    _file(any_site, "901/services.csv", b"y")
    people = next(obj for obj in any_drop.list_inbox("901") if obj.name == "people.csv")

    any_drop.remove(people)
    any_drop.remove(people)  # twice is harmless

    assert sorted(path.name for path in (any_site.root / "901").iterdir()) == ["services.csv"]


def test_removing_keeps_a_replacement_uploaded_after_listing(
    any_site: SftpSite | OpenSshSite, any_drop: SftpDrop
) -> None:
    _file(any_site, "901/people.csv", b"listed", mtime=1_700_000_000)
    listed = _only(any_drop.list_inbox("901"))
    path = _file(any_site, "901/people.csv", b"corrected", mtime=1_700_000_060)

    any_drop.remove(listed)

    assert path.read_bytes() == b"corrected"


def test_reports_are_written_whole_into_the_reports_folder(
    any_site: SftpSite | OpenSshSite, any_drop: SftpDrop
) -> None:
    any_drop.write_report("905", "2025-01-31-report.txt", b"first")
    any_drop.write_report("905", "2025-01-31-report.txt", b"second")

    folder = any_site.root / "905" / "reports"
    assert [path.name for path in folder.iterdir()] == ["2025-01-31-report.txt"]
    assert (folder / "2025-01-31-report.txt").read_bytes() == b"second"
    assert stat.S_IMODE((folder / "2025-01-31-report.txt").stat().st_mode) == 0o640
    assert any_drop.list_inbox("905") == []


@pytest.mark.parametrize("name", ["../escape.txt", "a/b.txt", ".hidden"])
def test_a_report_name_must_be_a_plain_file_name(any_drop: SftpDrop, name: str) -> None:
    with pytest.raises(ValueError):
        any_drop.write_report("901", name, b"x")


def test_no_file_name_reaches_the_logs_even_at_debug(
    any_site: SftpSite | OpenSshSite, any_drop: SftpDrop, caplog: pytest.LogCaptureFixture
) -> None:
    _file(any_site, f"901/{CANARY_NAME}", b"x")
    caplog.set_level(logging.DEBUG)

    obj = _only(any_drop.list_inbox("901"))
    any_drop.read(obj)
    any_drop.remove(obj)

    assert "Smith" not in caplog.text


# --- the connection ----------------------------------------------------------------------


def test_one_connection_serves_every_call_until_closed(sftp_site: SftpSite, drop: SftpDrop) -> None:
    _file(sftp_site, "901/people.csv", b"x")
    before = sftp_site.server.connections

    drop.la_codes_present()
    drop.read(_only(drop.list_inbox("901")))
    drop.write_report("901", "r.txt", b"ok")
    assert sftp_site.server.connections == before + 1

    drop.close()
    drop.la_codes_present()
    assert sftp_site.server.connections == before + 2


def test_a_dropped_connection_is_reopened(sftp_site: SftpSite, drop: SftpDrop) -> None:
    (sftp_site.root / "901").mkdir()
    assert drop.la_codes_present() == ["901"]
    assert drop._client is not None
    transport = drop._client.get_transport()
    assert transport is not None
    transport.close()  # as if the server or a firewall had cut it

    assert drop.la_codes_present() == ["901"]


def test_the_pinned_host_key_can_come_from_a_hashed_known_hosts_file(
    sftp_site: SftpSite, key: TrialKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = sftp_site.server
    hashed_name = paramiko.HostKeys.hash_host(f"[{server.host}]:{server.port}")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"{hashed_name} {server.host_key_line}\n")
    monkeypatch.delenv("TRIAL_SFTP_HOST_KEY")
    monkeypatch.setenv("TRIAL_SFTP_KNOWN_HOSTS", str(known_hosts))
    (sftp_site.root / "901").mkdir()

    with open_sftp_drop(sftp_site.url, key, _sftp()) as drop:
        assert drop.la_codes_present() == ["901"]
    assert known_hosts.read_text() == f"{hashed_name} {server.host_key_line}\n"


def test_an_unknown_host_key_is_refused(
    sftp_site: SftpSite, key: TrialKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A known_hosts file that pins keys for other servers only: fail closed."""
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{sftp_site.server.host}]:1 {sftp_site.server.host_key_line}\n")
    monkeypatch.delenv("TRIAL_SFTP_HOST_KEY")
    monkeypatch.setenv("TRIAL_SFTP_KNOWN_HOSTS", str(known_hosts))
    (sftp_site.root / "901").mkdir()
    sleeps = Sleeps()
    drop = _drop_with(sftp_site.url, key, sleep=sleeps)
    before = sftp_site.server.connections

    with pytest.raises(HostKeyUnknown) as raised:
        drop.la_codes_present()

    offered = paramiko.PKey.from_type_string(*_key_type_and_blob(sftp_site.server.host_key_line))
    message = str(raised.value)
    assert f"127.0.0.1:{sftp_site.server.port}" in message
    assert offered.fingerprint in message
    assert (sftp_site.server.connections - before, sleeps.waits) == (1, [])
    assert known_hosts.read_text().count("\n") == 1  # nothing was added


def test_a_changed_host_key_is_refused(
    sftp_site: SftpSite, key: TrialKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = asyncssh.generate_private_key("ssh-ed25519")
    monkeypatch.setenv("TRIAL_SFTP_HOST_KEY", public_key_line(pinned))
    sleeps = Sleeps()
    drop = _drop_with(sftp_site.url, key, sleep=sleeps)
    before = sftp_site.server.connections

    with pytest.raises(HostKeyMismatch) as raised:
        drop.la_codes_present()

    message = str(raised.value)
    assert f"127.0.0.1:{sftp_site.server.port}" in message
    assert pinned.get_fingerprint("sha256") in message
    assert sftp_site.server.host_key.get_fingerprint("sha256") in message
    assert (sftp_site.server.connections - before, sleeps.waits) == (1, [])


def test_a_pinned_key_of_another_type_is_refused(
    sftp_site: SftpSite, key: TrialKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = asyncssh.generate_private_key("ecdsa-sha2-nistp256")
    monkeypatch.setenv("TRIAL_SFTP_HOST_KEY", public_key_line(pinned))

    with pytest.raises(HostKeyMismatch):
        _drop_with(sftp_site.url, key).la_codes_present()


def test_no_pinned_host_key_refuses_to_start(
    sftp_site: SftpSite, key: TrialKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRIAL_SFTP_HOST_KEY")
    before = sftp_site.server.connections

    with pytest.raises(SftpConfigError, match="TRIAL_SFTP_HOST_KEY"):
        open_sftp_drop(sftp_site.url, key, _sftp())
    assert sftp_site.server.connections == before


def test_a_refused_user_key_is_a_clear_error_and_is_not_retried(
    sftp_site: SftpSite, key: TrialKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    monkeypatch.setenv("TRIAL_SFTP_KEY_FILE", str(write_private_key(stranger, tmp_path / "id")))
    sleeps = Sleeps()
    drop = _drop_with(sftp_site.url, key, sleep=sleeps)
    before = sftp_site.server.connections

    with pytest.raises(SftpAuthError) as raised:
        drop.la_codes_present()

    message = str(raised.value)
    assert f"127.0.0.1:{sftp_site.server.port}" in message
    assert "'trialsvc'" in message
    assert stranger.get_fingerprint("sha256") in message
    assert "not retried" in message
    assert (sftp_site.server.connections - before, sleeps.waits) == (1, [])


def test_another_user_name_is_refused(sftp_site: SftpSite, key: TrialKey) -> None:
    url = sftp_site.url.replace("trialsvc@", "someone@")

    with pytest.raises(SftpAuthError, match="'someone'"):
        _drop_with(url, key).la_codes_present()


def test_a_refused_connection_is_retried_with_backoff_then_reported(
    sftp_site: SftpSite, key: TrialKey
) -> None:
    sleeps = Sleeps()
    drop = _drop_with(f"sftp://trialsvc@127.0.0.1:{free_port()}/", key, attempts=4, sleep=sleeps)

    with pytest.raises(SftpUnavailable) as raised:
        drop.la_codes_present()

    assert sleeps.waits == [0.5, 1.0, 2.0]
    assert "failed 4 attempts" in str(raised.value)
    assert "Connection" in str(raised.value)  # ConnectionRefusedError, or paramiko's wrapper


def test_a_server_that_comes_up_during_the_backoff_is_used(
    sftp_site: SftpSite, key: TrialKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    (tmp_path / "901").mkdir()
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    monkeypatch.setenv("TRIAL_SFTP_HOST_KEY", public_key_line(host_key))
    started: list[SftpServer] = []

    class StartServerWhileWaiting(Sleeps):
        def __call__(self, seconds: float) -> None:
            super().__call__(seconds)
            if not started:
                started.append(
                    SftpServer.start(
                        tmp_path, sftp_site.server.client_key, host_key=host_key, port=port
                    )
                )

    sleeps = StartServerWhileWaiting()
    try:
        drop = _drop_with(f"sftp://trialsvc@127.0.0.1:{port}/", key, sleep=sleeps)
        assert drop.la_codes_present() == ["901"]
        drop.close()
    finally:
        for server in started:
            server.stop()
    assert sleeps.waits == [0.5]


def test_a_server_that_never_sends_its_banner_times_out_and_is_retried(
    sftp_site: SftpSite, key: TrialKey
) -> None:
    silent = SilentTcpServer()
    sleeps = Sleeps()
    try:
        drop = _drop_with(f"sftp://trialsvc@127.0.0.1:{silent.port}/", key, sleep=sleeps)
        with pytest.raises(SftpUnavailable) as raised:
            drop.la_codes_present()
    finally:
        silent.stop()
    assert silent.connections == 3
    assert len(sleeps.waits) == 2
    assert "TimeoutError" in str(raised.value) or "EOFError" in str(raised.value)


# --- configuration -----------------------------------------------------------------------


def test_a_private_key_that_others_can_read_is_refused(sftp_site: SftpSite, key: TrialKey) -> None:
    sftp_site.client_key_file.chmod(0o644)

    with pytest.raises(SftpConfigError, match="group or others have access"):
        open_sftp_drop(sftp_site.url, key, _sftp())


@pytest.mark.parametrize(
    "env",
    [
        {"TRIAL_SFTP_HOST_KEY": "[127.0.0.1]:22 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"},
        {"TRIAL_SFTP_HOST_KEY": "ssh-ed25519 not-base64!"},
        {"TRIAL_SFTP_HOST_KEY": "ssh-ed25519 AAAA", "TRIAL_SFTP_KNOWN_HOSTS": "/etc/hosts"},
        {"TRIAL_SFTP_KNOWN_HOSTS": "/nonexistent/known_hosts"},
    ],
)
def test_unusable_host_key_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(SftpConfigError):
        pinned_host_keys(parse_sftp_url("sftp://svc@127.0.0.1:2222/drop"), _sftp(env))


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sftp://svc:hunter2@host/drop", "password"),
        ("sftp://host/drop", "user"),
        ("ftp://svc@host/drop", "sftp://"),
        ("sftp://svc@host/a/../b", ".."),
        ("sftp://svc@host:99999/drop", "port"),
    ],
)
def test_unusable_urls_are_refused_without_repeating_them(url: str, problem: str) -> None:
    with pytest.raises(SftpConfigError) as raised:
        parse_sftp_url(url)
    assert problem in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_a_url_names_user_host_port_and_folder() -> None:
    target = parse_sftp_url("sftp://trial%2Dsvc@sftp.example.org:2222/srv/drop/")

    assert (target.username, target.host, target.port, target.root) == (
        "trial-svc",
        "sftp.example.org",
        2222,
        "/srv/drop",
    )
    assert target.known_hosts_name == "[sftp.example.org]:2222"
    assert parse_sftp_url("sftp://svc@host").known_hosts_name == "host"
    assert parse_sftp_url("sftp://svc@host").root == "."


@given(
    st.lists(st.text(alphabet="abcxyz019_-", min_size=1, max_size=6), min_size=1, max_size=4),
    st.booleans(),
)
def test_the_drop_folder_is_the_normalised_absolute_path(
    segments: list[str], trailing_slash: bool
) -> None:
    path = "/" + "/".join(segments) + ("/" if trailing_slash else "")

    assert parse_sftp_url(f"sftp://svc@host{path}").root == "/" + "/".join(segments)


@given(st.integers(min_value=2, max_value=12))
def test_backoff_doubles_up_to_its_ceiling(attempt: int) -> None:
    policy = RetryPolicy(attempts=12, first_delay=0.5, factor=2.0, max_delay=10.0)

    assert policy.delay_before(attempt) == min(0.5 * 2 ** (attempt - 2), 10.0)
    assert policy.delay_before(attempt) >= policy.delay_before(max(attempt - 1, 2))


def _key_type_and_blob(line: str) -> tuple[str, bytes]:
    key_type, encoded = line.split()[:2]
    return key_type, base64.b64decode(encoded)


def test_a_drop_that_is_let_go_closes_its_connection(sftp_site: SftpSite, key: TrialKey) -> None:
    drop = open_sftp_drop(sftp_site.url, key, _sftp())
    drop.la_codes_present()
    assert drop._client is not None
    transport = drop._client.get_transport()
    assert transport is not None and transport.is_active()

    del drop
    gc.collect()

    assert not transport.is_active()


def _sftp(env: dict[str, str] | None = None) -> SftpSettings:
    """The SFTP settings in `env`, by default the environment the test has set up."""
    return Settings.from_env(env).sftp
