"""The trial's ingestion service: Dagster code location, pipeline, warehouse and command line."""

import os

# polars allocates through its own jemalloc, which by polars' default hands freed pages back
# with MADV_FREE after 1 s ("muzzy"), and such pages still count in RSS until the kernel wants
# them: a large return's finished slices piled up at the peak. Returning them at once costs no
# measurable time. One arena for every thread instead of four per core: the threads that check
# slices reuse each other's freed pages rather than each faulting in new ones. The figures are
# in docs/PERFORMANCE.md. polars adds its own settings in front of these
# when it is first imported, so they are set here, before; an operator's own setting wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "muzzy_decay_ms:0,narenas:1")
