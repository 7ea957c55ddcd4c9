"""Where files live outside the warehouse: the LAs' drop and the encrypted landing store.

`ingest.storage.drop` and `ingest.storage.landing` each hold a base (the protocol, its types and
rules), a local-folder implementation and the remote ones (S3, and SFTP for the drop), picked by
URL. `ingest.storage.s3` is what both S3 implementations share.
"""
