"""`process_return`: one LA file in, the seven `clean/<dataset>` assets (LA partitions) out.

The work happens in `ingest.processing`; this wrapper turns its result into what the Dagster UI
shows per LA and dataset: a materialisation when a return became the LA's current rows (rows
loaded, rejected by rule, received time, column schema), an observation when it did not
(rejected, held by a check, or superseded by a later-received return), and the blocking
checks' results.

The checks run inside the pipeline *before* the load, which loads the return into history only
when one fails, so a failing return never replaces the earlier rows. Their results are then
reported as blocking ERROR checks, which fails the run: a held return needs a person, who can
release it by running `ingest_return` again with its submission id and `release_held`.

Nothing raw leaves a step: the asset returns no value (so the IO manager stores nothing), and
an unexpected error is re-raised as its class name only, because a library's message may quote
a value from the file.
"""

import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetOut,
    AssetsDefinition,
    Config,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    PreviewWarning,
    TableColumn,
    TableSchema,
    multi_asset,
)
from pydantic import Field

from ingest.assets.partitions import AllocatedLAs
from ingest.jobs import PROCESS_RETURN_OP, SUBMISSION_TAG, clean_asset_key
from ingest.resources import DropResource, LandingResource, TrialKeysResource, WarehouseResource
from schemas.datasets import DATASETS

if TYPE_CHECKING:
    from ingest.processing import DatasetResult, Services, SubmissionResult

WAREHOUSE_GROUP = "warehouse"

ReturnEvent = MaterializeResult[None] | AssetCheckResult | AssetObservation


class ReturnSource(Config):
    """Which file the run processes: a drop file (the sensor's runs) or a landed one."""

    fingerprint: str = Field(
        default="", description="The drop file's keyed fingerprint (set by la_drop_sensor)."
    )
    submission_id: str = Field(
        default="",
        description="Process this landed submission again instead (re-runs, key rotation).",
    )
    release_held: bool = Field(
        default=False,
        description=(
            "Load the return even where a blocking check fails: for a person who has looked "
            "at a held return and accepts it."
        ),
    )


class ReturnFailed(RuntimeError):
    """Processing failed; the message names the LA, the stage and an error class only."""


def check_specs(partitions: PartitionsDefinition) -> list[AssetCheckSpec]:
    """Each dataset's blocking checks, partitioned by LA.

    Partitioned asset checks are a preview feature of Dagster 1.13: they are what lets the UI
    show each LA's check status. The blocking itself happens in the pipeline, before the load.
    """
    from ingest.processing import CHECK_DESCRIPTIONS, Check

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PreviewWarning)
        return [
            AssetCheckSpec(
                check.value,
                asset=clean_asset_key(dataset),
                blocking=True,
                description=CHECK_DESCRIPTIONS[check],
                partitions_def=partitions,
            )
            for dataset in DATASETS
            for check in Check
        ]


def _outs(warehouse_kind: str) -> dict[str, AssetOut]:
    return {
        name: AssetOut(
            key=clean_asset_key(name),
            is_required=False,
            group_name=WAREHOUSE_GROUP,
            description=f"clean.{name}: each LA's current return. {dataset.description}",
            kinds={warehouse_kind},
        )
        for name, dataset in DATASETS.items()
    }


def build_process_return(allocated: AllocatedLAs, warehouse_kind: str) -> AssetsDefinition:
    partitions = allocated.partitions

    @multi_asset(
        name=PROCESS_RETURN_OP,
        outs=_outs(warehouse_kind),
        check_specs=check_specs(partitions),
        partitions_def=partitions,
        can_subset=True,
        description="Land, check, report and load one file an LA dropped.",
    )
    def process_return(
        context: AssetExecutionContext,
        config: ReturnSource,
        drop: DropResource,
        landing: LandingResource,
        warehouse: WarehouseResource,
        trial_keys: TrialKeysResource,
    ) -> Iterator[ReturnEvent]:
        la_code = context.partition_key
        result = _run_pipeline(context, config, la_code, drop, landing, warehouse, trial_keys)
        if result is None:
            context.log.warning(
                f"LA {la_code}: file {config.fingerprint} left the inbox before this run took "
                "it (uploaded again, or taken by another run), or its outcome was already "
                "recorded: nothing to do"
            )
            return
        context.log.info(summary_line(result))
        selected = context.selected_asset_keys
        for dataset in result.datasets:
            if clean_asset_key(dataset.dataset) in selected:
                yield from dataset_events(dataset, result)

    return process_return


def _run_pipeline(
    context: AssetExecutionContext,
    config: ReturnSource,
    la_code: str,
    drop: DropResource,
    landing: LandingResource,
    warehouse: WarehouseResource,
    trial_keys: TrialKeysResource,
) -> "SubmissionResult | None":
    """The pipeline's result, or None when the file was no longer in the inbox."""
    from ingest import processing

    safe_errors = _safe_errors()
    stage = "reading the run config"
    failure = ""
    try:
        submission_id = _submission_to_reprocess(context, config)
        stage = "opening the drop, landing store, warehouse and keys"
        services = _services(drop, landing, warehouse, trial_keys, needs_drop=not submission_id)
        if submission_id:
            stage = f"reading submission {submission_id} from the landing store"
            received = processing.take_from_landing(services, la_code, submission_id)
        else:
            stage = f"taking file {config.fingerprint} from the drop"
            taken = processing.take_from_drop(services, la_code, config.fingerprint)
            if taken is None:
                return None
            received = taken
            context.instance.add_run_tags(
                context.run.run_id, {SUBMISSION_TAG: received.submission_id}
            )
        stage = f"processing submission {received.submission_id}"
        return processing.process_received(
            services,
            received,
            detect_duplicate=not submission_id,
            release_held=config.release_held,
        )
    except safe_errors as exc:
        failure = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a library's message may quote a value: keep only the class
        failure = type(exc).__name__
    raise ReturnFailed(f"LA {la_code}: {stage} failed: {failure}")


def _submission_to_reprocess(context: AssetExecutionContext, config: ReturnSource) -> str:
    """The landed submission to process, or "" to take the configured file from the drop.

    A re-execution of a run that had already taken its file off the drop inherits the run's
    submission tag, and so processes the landed file.
    """
    from ingest.processing import PipelineError

    if config.fingerprint and config.submission_id:
        raise PipelineError("give either a fingerprint or a submission_id, not both")
    submission_id = config.submission_id or context.run.tags.get(SUBMISSION_TAG, "")
    if not (submission_id or config.fingerprint):
        raise PipelineError("give the drop file's fingerprint or a landed submission_id")
    return submission_id


def _services(
    drop: DropResource,
    landing: LandingResource,
    warehouse: WarehouseResource,
    trial_keys: TrialKeysResource,
    *,
    needs_drop: bool,
) -> "Services":
    from ingest.processing import Services
    from ingest.settings import ConfigurationError
    from pseudonymise.tokens import Tokeniser

    try:
        opened_drop = drop.get()
    except ConfigurationError:
        if needs_drop:
            raise
        opened_drop = None  # a landed file can be reprocessed without the drop (no report)
    return Services(
        landing=landing.get(),
        warehouse=warehouse.get(),
        tokeniser=Tokeniser(trial_keys.pseudonym()),
        drop=opened_drop,
    )


def _safe_errors() -> tuple[type[Exception], ...]:
    """Errors of this service whose messages are written never to hold a value from a file."""
    from ingest.allocation import AllocationError
    from ingest.processing import PipelineError
    from ingest.settings import ConfigurationError
    from ingest.storage.drop import DropError
    from ingest.storage.landing import LandingError
    from ingest.warehouse import WarehouseError
    from pseudonymise.keys import KeyConfigError

    return (
        PipelineError,
        DropError,
        LandingError,
        ConfigurationError,
        KeyConfigError,
        WarehouseError,
        AllocationError,
    )


# --- events ---------------------------------------------------------------------------------


def dataset_events(dataset: "DatasetResult", result: "SubmissionResult") -> Iterator[ReturnEvent]:
    """What the UI records for one dataset of the file."""
    from ingest.processing import DatasetStatus

    key = clean_asset_key(dataset.dataset)
    metadata = return_metadata(dataset, result)
    if dataset.status in (DatasetStatus.ACCEPTED, DatasetStatus.HELD):
        yield from check_results(key, dataset)
    if dataset.status is DatasetStatus.ACCEPTED:
        yield MaterializeResult(asset_key=key, metadata=metadata)
    else:
        yield AssetObservation(
            asset_key=key,
            partition=result.la_code,
            metadata=metadata,
            description=_observation_text(dataset),
        )


def check_results(key: AssetKey, dataset: "DatasetResult") -> Iterator[AssetCheckResult]:
    # A released return was loaded on a person's decision: its failures no longer block.
    severity = AssetCheckSeverity.WARN if dataset.released else AssetCheckSeverity.ERROR
    for verdict in dataset.checks:
        yield AssetCheckResult(
            asset_key=key,
            check_name=verdict.check.value,
            passed=verdict.passed,
            severity=severity,
            description=verdict.description,
            metadata=dict(verdict.metadata),
        )


def return_metadata(
    dataset: "DatasetResult", result: "SubmissionResult"
) -> dict[str, MetadataValue[Any]]:
    return {
        "status": MetadataValue.text(dataset.status.value),
        "dagster/row_count": MetadataValue.int(dataset.rows_loaded),
        "rows_received": MetadataValue.int(dataset.rows_received),
        "rows_rejected": MetadataValue.int(dataset.rows_rejected),
        "rejected_by_rule": MetadataValue.json(dataset.rejected_by_rule),
        "received_at": MetadataValue.timestamp(result.received_at),
        "submission_id": MetadataValue.text(result.submission_id),
        "key_id": MetadataValue.text(result.key_id),
        "dagster/column_schema": MetadataValue.table_schema(
            column_schema(dataset.dataset, dataset.columns)
        ),
    }


def column_schema(dataset: str, columns: dict[str, str]) -> TableSchema:
    """The stored columns, described from the data contract."""
    described = {f.stored_name: f.description for f in DATASETS[dataset].stored_fields}
    return TableSchema(
        columns=[
            TableColumn(name, type=dtype, description=described.get(name))
            for name, dtype in columns.items()
        ]
    )


def _observation_text(dataset: "DatasetResult") -> str:
    from ingest.processing import DatasetStatus

    if dataset.status is DatasetStatus.HELD:
        checks = ", ".join(dataset.failed_checks)
        return f"Held back by blocking checks ({checks}): the earlier return stays current."
    if dataset.status is DatasetStatus.SUPERSEDED:
        return "Loaded into history only: a return received later is current."
    rules = ", ".join(dataset.rejection_rules) or "no valid rows"
    return f"Rejected ({rules}): the earlier return stays current."


def summary_line(result: "SubmissionResult") -> str:
    parts = [f"LA {result.la_code}: submission {result.submission_id} {result.status.value}"]
    if result.file_rules:
        parts.append(f"rejected by {', '.join(result.file_rules)}")
    parts += [
        f"{d.dataset} {d.status.value}: {d.rows_loaded} loaded, {d.rows_rejected} rejected"
        for d in result.datasets
    ]
    return "; ".join(parts)
