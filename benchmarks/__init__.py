"""The performance harness: `python -m benchmarks.run` (see docs/PERFORMANCE.md)."""

import ingest  # noqa: F401 (the service's allocator settings, before anything imports polars)
