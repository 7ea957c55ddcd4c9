"""The trial's ingestion service: Dagster code location, pipeline, warehouse and command line."""

import os

# polars allocates through its own jemalloc, which by polars' default hands freed pages back
# with MADV_FREE after 1 s ("muzzy"), and such pages still count in RSS until the kernel wants
# them: a large return's finished slices piled up (1M rows: 50–120 MB more at the peak, which put
# it over 1 GB). Returning them at once costs no measurable time (docs/PERFORMANCE.md). polars
# adds this to its own settings when it is first imported, so it is set here, before; an
# operator's own setting wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "muzzy_decay_ms:0")
