"""Loading a small CSV return straight into a warehouse, for tests of what reads the warehouse."""

from __future__ import annotations

from datetime import UTC, date, datetime

from ingest.warehouse import Warehouse
from pseudonymise.tokens import Tokeniser
from schemas.submission import check_submission


def load_csv_return(
    warehouse: Warehouse,
    dataset: str,
    content: str,
    serial: int,
    *,
    la_code: str,
    tokeniser: Tokeniser,
) -> None:
    """Check `content` as the pipeline would and load it as the LA's `serial`-th return; every
    row must pass, so a test's own data mistakes fail loudly here."""
    outcome = check_submission(
        content.encode(), la_code=la_code, tokeniser=tokeniser, today=date(2026, 1, 1)
    )
    [table] = outcome.tables
    assert table.dataset == dataset and table.rows_rejected == 0
    warehouse.load_return(
        la_code=la_code,
        dataset=dataset,
        submission_id=f"{la_code}-{serial:024d}",
        key_id=tokeniser.key_id,
        received_at=datetime(2026, 1, 1, serial, tzinfo=UTC),
        table=table,
    )
