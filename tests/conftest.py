"""Fixtures shared by every test module.

The real servers on loopback (moto's S3 API, an SFTP server) live in `tests/servers.py`;
importing them here makes them available to every test.
"""

from servers import s3_bucket, s3_server, sftp_server, sftp_site

__all__ = ["s3_bucket", "s3_server", "sftp_server", "sftp_site"]
