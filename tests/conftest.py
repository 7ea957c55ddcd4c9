"""Fixtures shared by every test module.

The real servers on loopback (moto's S3 API, an asyncssh SFTP server, OpenSSH's sshd) live in
`tests/servers.py`; importing them here makes them available to every test.
"""

from servers import openssh_server, openssh_site, s3_bucket, s3_server, sftp_server, sftp_site

__all__ = ["openssh_server", "openssh_site", "s3_bucket", "s3_server", "sftp_server", "sftp_site"]
