"""One measured case of the harness: what the child reported and what the parent saw."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Measured:
    """One case: what the child reported, and what the parent saw of it."""

    name: str
    command: str  # the command line that reproduces the figure
    wall_seconds: float
    peak_rss_bytes: int  # the child's own VmHWM, else wait4's (with its descendants)
    returncode: int
    result: dict[str, Any] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # user + system, the child and its descendants (wait4)
    load_average: tuple[float, float] = (0.0, 0.0)  # 1-minute, before and after: other work
