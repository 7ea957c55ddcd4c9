"""Fixtures shared by every test module.

The real servers on loopback (moto's S3 API, an asyncssh SFTP server, OpenSSH's sshd) live in
`tests/servers.py`; importing them here makes them available to every test.
"""

import secrets

import pytest
from servers import openssh_server, openssh_site, s3_bucket, s3_server, sftp_server, sftp_site

from pseudonymise.keys import TrialKey

__all__ = ["openssh_server", "openssh_site", "s3_bucket", "s3_server", "sftp_server", "sftp_site"]


@pytest.fixture
def key() -> TrialKey:
    """A fresh random key (a drop's fingerprint key, say), for tests that need any key."""
    return TrialKey(secrets.token_bytes(32))
