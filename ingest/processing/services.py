"""What processing is given: the landing store, the warehouse, the tokeniser, the drop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.storage.drop import Drop
    from ingest.storage.landing import Landing
    from ingest.warehouse import Warehouse
    from pseudonymise.tokens import Tokeniser


@dataclass(frozen=True)
class Services:
    """What processing needs. `drop` may be None when reprocessing from the landing store."""

    landing: Landing
    warehouse: Warehouse
    tokeniser: Tokeniser
    drop: Drop | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Files of `chunked_from_bytes` or more are checked and loaded `chunk_rows` rows at a time
    # (None: the defaults of `schemas.chunked`).
    chunked_from_bytes: int | None = None
    chunk_rows: int | None = None
