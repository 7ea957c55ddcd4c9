"""`python -m ingest.cli`, the same as `trial-ingest`."""

import sys

from ingest.cli import main

sys.exit(main())
