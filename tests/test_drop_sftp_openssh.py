"""The SFTP drop's connection against OpenSSH's own sshd (Debian's openssh-server) on loopback.

The drop's protocol tests (listing, reading, removing, reports) run against both asyncssh and
sshd in `tests/test_drop_sftp.py`; these check host-key pinning and logins against the server
LAs will really use, which fail closed. The end-to-end run over sshd is the `openssh` drop of
`tests/test_e2e_matrix.py`.
"""

from __future__ import annotations

import base64
from pathlib import Path

import paramiko
import pytest
from servers import OpenSshSite, generate_key_pair

from ingest.settings import Settings, SftpSettings
from ingest.storage.drop.sftp import RetryPolicy, SftpDrop, open_sftp_drop
from ingest.storage.drop.sftp_connection import (
    HostKeyMismatch,
    HostKeyUnknown,
    SftpAuthError,
    SftpConfigError,
    SftpConnector,
    SftpTimeouts,
    load_user_key,
    parse_sftp_url,
    pinned_host_keys,
)
from pseudonymise.keys import TrialKey

FAST = SftpTimeouts(connect=2, banner=2, auth=5, channel=5, request=10)


def _drop_with(url: str, key: TrialKey) -> SftpDrop:
    """One attempt only, configured from the environment: a retry would hide a failure."""
    target = parse_sftp_url(url)
    connector = SftpConnector(
        target, load_user_key(_sftp().key_file), pinned_host_keys(target, _sftp()), FAST
    )
    return SftpDrop(connector, key, retry=RetryPolicy(attempts=1))


def _fingerprint(key_line: str) -> str:
    """`SHA256:…`, as paramiko (and the service's messages) print a public key line's key."""
    key_type, encoded = key_line.split()[:2]
    return paramiko.PKey.from_type_string(key_type, base64.b64decode(encoded)).fingerprint


# --- host keys and logins ---------------------------------------------------------------


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
        open_sftp_drop(openssh_site.url, key, _sftp())


def test_the_real_host_key_from_a_known_hosts_file_is_accepted(
    openssh_site: OpenSshSite, key: TrialKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = openssh_site.server
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{server.port} {server.host_key_line}\n")
    monkeypatch.delenv("TRIAL_SFTP_HOST_KEY")
    monkeypatch.setenv("TRIAL_SFTP_KNOWN_HOSTS", str(known_hosts))
    (openssh_site.root / "901").mkdir()

    with open_sftp_drop(openssh_site.url, key, _sftp()) as drop:
        assert drop.la_codes_present() == ["901"]


def test_a_key_sshd_does_not_authorise_is_refused(
    openssh_site: OpenSshSite, key: TrialKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_key_pair(tmp_path / "unknown_client_key")
    monkeypatch.setenv("TRIAL_SFTP_KEY_FILE", str(tmp_path / "unknown_client_key"))

    with pytest.raises(SftpAuthError, match="refused the login"):
        _drop_with(openssh_site.url, key).la_codes_present()


def _sftp(env: dict[str, str] | None = None) -> SftpSettings:
    """The SFTP settings in `env`, by default the environment the test has set up."""
    return Settings.from_env(env).sftp
