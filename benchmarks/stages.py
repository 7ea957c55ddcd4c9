"""Time spent per stage of the processing path, measured by wrapping the stage functions.

Time goes to the innermost stage being run (a parse inside a row check counts as parse, not
twice), so the stages add up to at most the total. The wrappers replace names in the modules
that call them, only inside the benchmark's own child process.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

STAGES = ("read", "parse", "pseudonymise", "validate", "split", "load")
# The loader waiting for the next chunk (checked meanwhile in the worker thread): not work.
WAITING = "waiting"

# (module, function name, stage): where each stage's functions are called from.
_FUNCTIONS = (
    ("schemas.chunked", "csv_layout", "read"),
    ("schemas.chunked", "data_rows", "read"),
    ("schemas.chunked", "raw_columns", "read"),
    ("schemas.submission", "read_submission", "read"),
    ("schemas.chunked", "parse_table", "parse"),
    ("schemas.submission", "parse_table", "parse"),
    ("schemas.chunked", "pseudonymise_table", "pseudonymise"),
    ("schemas.submission", "pseudonymise_table", "pseudonymise"),
    ("schemas.chunked", "duplicated_key_rows", "validate"),
    ("schemas.submission", "validate_rows", "validate"),
    ("schemas.chunked", "checked_rows", "split"),
    ("schemas.submission", "checked_rows", "split"),
)
# (module, class, method name, stage)
_METHODS = (("schemas.reader.csv_slices", "CsvSlice", "read", "read"),)


class StageClock:
    """Seconds per stage, exclusive of nested stages, kept per thread.

    Chunks may be checked in a worker thread while the main thread loads the one before, so
    stages can overlap and their sum can exceed the wall-clock total.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys((*STAGES, WAITING), 0.0)
        self._lock = threading.Lock()
        self._local = threading.local()

    def _stack(self) -> list[str]:
        stack: list[str] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
            self._local.since = time.perf_counter()
        return stack

    def _switch(self, stack: list[str]) -> None:
        now = time.perf_counter()
        if stack:
            with self._lock:
                self.seconds[stack[-1]] += now - self._local.since
        self._local.since = now

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        stack = self._stack()
        self._switch(stack)
        stack.append(name)
        try:
            yield
        finally:
            self._switch(stack)
            stack.pop()

    def wrap(self, function: F, name: str) -> F:
        @wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.stage(name):
                return function(*args, **kwargs)

        return timed  # type: ignore[return-value]


def instrument(clock: StageClock) -> None:
    """Wrap the processing path's stage functions where they are called."""
    for module_name, function_name, stage in _FUNCTIONS:
        module = importlib.import_module(module_name)
        setattr(module, function_name, clock.wrap(getattr(module, function_name), stage))
    for module_name, class_name, method_name, stage in _METHODS:
        cls = getattr(importlib.import_module(module_name), class_name)
        setattr(cls, method_name, clock.wrap(getattr(cls, method_name), stage))
