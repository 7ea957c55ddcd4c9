"""`trial/allocation`: the evaluator's allocation file loaded into `trial.allocation`.

Materialised by `trial-ingest run` before every pass over the drop, and by the UI's
`allocation_automation` sensor when it has never been loaded. The file is configuration from
the evaluator, not LA data; its LA codes are also the partitions of the `clean/<dataset>`
assets (read when the definitions load).
"""

from collections import Counter

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AutomationCondition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ingest.jobs import ALLOCATION_KEY
from ingest.resources import AllocationResource, WarehouseResource

# Once, when the asset is missing. Not `eager()` or `on_missing()`: both skip an asset that is
# already missing when the condition is first evaluated, which is exactly a new deployment.
LOAD_WHEN_MISSING = (
    AutomationCondition.missing().newly_true() & ~AutomationCondition.in_progress()
).with_label("load_when_missing")


def build_trial_allocation(warehouse_kind: str) -> AssetsDefinition:
    @asset(
        key=ALLOCATION_KEY,
        group_name="trial",
        automation_condition=LOAD_WHEN_MISSING,
        description="trial.allocation: each LA's name, arm and randomisation date.",
        kinds={warehouse_kind},
    )
    def trial_allocation(
        context: AssetExecutionContext,
        allocation: AllocationResource,
        warehouse: WarehouseResource,
    ) -> MaterializeResult[None]:
        opened = warehouse.get()
        opened.create_schema()
        rows = opened.load_allocation(allocation.file())
        arms = Counter(row.arm for row in rows)
        context.log.info(f"allocation: {len(rows)} LAs loaded")
        return MaterializeResult(
            metadata={
                "dagster/row_count": len(rows),
                "arms": MetadataValue.json(dict(sorted(arms.items()))),
                "la_codes": ", ".join(row.la_code for row in rows),
            }
        )

    return trial_allocation
