"""A `trial-ingest run` that kills itself (SIGKILL, as `kill -9` does) at one step of
processing: run as a script by `test_take_safely.py`, with the service's settings in its
environment.

    python tests/killed_run.py STEP CALL

kills the process at the CALL-th time processing reaches STEP (see `STEPS`); with no such call
the run ends normally and the script exits 3.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import schemas.submission
from ingest.runner import run_once
from ingest.storage.drop import LocalFolderDrop
from ingest.storage.landing import LandingStore
from ingest.warehouse import Warehouse

# step -> (owner, attribute, kill after the call (True) or before it (False))
STEPS: dict[str, tuple[Any, str, bool]] = {
    "landed": (LandingStore, "put", True),  # the file is landed, nothing else
    "checking": (schemas.submission, "check_submission", False),  # during the check
    "loaded": (Warehouse, "record_file_issues", False),  # every load committed, no audit
    "reported": (Warehouse, "record_submission", False),  # report written, no audit row
    "audited": (LocalFolderDrop, "remove", False),  # audit committed, file still in the inbox
}


def kill_at(step: str, call: int) -> None:
    owner, name, after = STEPS[step]
    original: Callable[..., Any] = getattr(owner, name)
    calls = 0

    def killing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == call and not after:
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if calls == call and after:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, killing)


if __name__ == "__main__":
    kill_at(sys.argv[1], int(sys.argv[2]))
    run_once(dict(os.environ))
    sys.exit(3)
