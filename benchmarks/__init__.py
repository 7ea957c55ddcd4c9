"""The performance harness: `python -m benchmarks.run` (see docs/PERFORMANCE.md)."""
