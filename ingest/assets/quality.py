"""`quality/report`: the evaluators' data-quality report (Markdown), refreshed after returns.

Written to `$TRIAL_QUALITY_DIR/quality_report.md`, by default `$TRIAL_HOME/quality/` (a
directory for the evaluators, beside the DuckDB warehouse). The report holds counts,
percentages, LA codes, rule and column names only, and so does the materialisation's metadata.

great-expectations is imported only when the asset runs (see `ingest.quality`), so loading the
code location stays fast.
"""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ingest.jobs import clean_asset_key
from ingest.quality import write_report
from ingest.resources import ServiceSettings, WarehouseResource
from schemas.datasets import DATASETS

QUALITY_KEY = AssetKey(["quality", "report"])

# Not `eager()`: it waits while any dependency is missing, and with one partition per LA and
# dataset some are missing for most of the trial (an LA that has not sent a dataset yet).
REFRESH_AFTER_RETURNS = (
    AutomationCondition.any_deps_updated()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("refresh_after_returns")


def build_quality_report(warehouse_kind: str) -> AssetsDefinition:
    @asset(
        key=QUALITY_KEY,
        group_name="quality",
        deps=[clean_asset_key(name) for name in DATASETS],
        automation_condition=REFRESH_AFTER_RETURNS,
        description="Data-quality report over the clean tables (great-expectations), counts only.",
        kinds={warehouse_kind, "great_expectations"},
    )
    def quality_report_asset(
        context: AssetExecutionContext, warehouse: WarehouseResource, settings: ServiceSettings
    ) -> MaterializeResult[None]:
        from ingest.quality import quality_report, render_quality_markdown

        report = quality_report(warehouse.get())
        path = write_report(render_quality_markdown(report), settings.get().quality_dir)
        context.log.info(
            f"quality report: {report.evaluated} expectations, {report.failed} failed, "
            f"{report.seconds:.1f} s"
        )
        return MaterializeResult(
            metadata={
                "expectations_evaluated": report.evaluated,
                "expectations_failed": report.failed,
                "cross_check_findings": len(report.cross_checks),
                "las": len(report.la_codes),
                "per_dataset": MetadataValue.json(report.per_dataset()),
                "seconds": round(report.seconds, 2),
                "path": MetadataValue.path(str(path)),
                "dagster/uri": path.as_uri(),
            }
        )

    return quality_report_asset


def build_quality_automation() -> AutomationConditionSensorDefinition:
    """Evaluates `quality/report`'s condition (Dagster's default automation sensor starts
    stopped)."""
    return AutomationConditionSensorDefinition(
        "quality_automation",
        target=[QUALITY_KEY],
        default_status=DefaultSensorStatus.RUNNING,
        description="Refreshes the data-quality report after the clean tables change.",
    )
