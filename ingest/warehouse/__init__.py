"""The warehouse: pseudonymised returns, their history, quarantine and the audit trail.

One module per job: `layout` (schemas, tables, views, DDL), `session` (engine, transactions,
lock wait, error descriptions), `bulk` (rows in through each database's bulk path), `spool`
(DuckDB's Parquet spool), `loading` (a return, chunk by chunk), `withdrawals`, `audit`
(submissions, issues, retention log, current returns), `errors`, `cross_check_queries` (the
cross-dataset rules run in SQL), and `warehouse` (the `Warehouse` that puts them together).
"""

from ingest.warehouse.audit import CurrentReturn, PreviousReturn, SubmissionRecord
from ingest.warehouse.bulk import (
    BulkInserter,
    DuckDBArrowInserter,
    PostgresCopyInserter,
    bulk_inserter_for,
)
from ingest.warehouse.cross_check_queries import cross_check_findings
from ingest.warehouse.errors import WarehouseError, WarehouseLoadError
from ingest.warehouse.layout import (
    SCHEMAS,
    STATUSES,
    Status,
    dataset_column_types,
    service_date_columns,
    token_columns,
)
from ingest.warehouse.loading import (
    ChunkTotals,
    FixedReplace,
    LoadResult,
    ReplacePolicy,
    newest_service_date,
)
from ingest.warehouse.session import describe_database_error, duckdb_url
from ingest.warehouse.spool import SPOOL_MARK
from ingest.warehouse.warehouse import Warehouse

__all__ = [
    "SCHEMAS",
    "SPOOL_MARK",
    "STATUSES",
    "BulkInserter",
    "ChunkTotals",
    "CurrentReturn",
    "DuckDBArrowInserter",
    "FixedReplace",
    "LoadResult",
    "PostgresCopyInserter",
    "PreviousReturn",
    "ReplacePolicy",
    "Status",
    "SubmissionRecord",
    "Warehouse",
    "WarehouseError",
    "WarehouseLoadError",
    "bulk_inserter_for",
    "cross_check_findings",
    "dataset_column_types",
    "describe_database_error",
    "duckdb_url",
    "newest_service_date",
    "service_date_columns",
    "token_columns",
]
