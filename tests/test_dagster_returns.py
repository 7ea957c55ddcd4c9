"""Files from the drop to the warehouse through Dagster: `trial-ingest run`'s `run_once` (the
sensor evaluated once, one `ingest_return` run per file) on a real DAGSTER_HOME, then what the
warehouse, the audit table, the LA's reports and Dagster's own records say."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
from dagster import AssetCheckSeverity, AssetRecordsFilter, DagsterEventType, DagsterInstance
from test_dagster_definitions import TrialService, episodes_csv, people_csv, service

from ingest.instance import RunnerError
from ingest.jobs import (
    DROP_OBJECT_TAG,
    LA_TAG,
    RETURN_JOB,
    SUBMISSION_TAG,
    clean_asset_key,
    return_run_config,
)
from ingest.outcomes import FileOutcome
from ingest.release import release_held
from ingest.settings import environment
from ingest.storage.drop import open_drop
from pseudonymise.keys import load_key

__all__ = ["service"]
pytestmark = pytest.mark.slow


def materialisations(service: TrialService, dataset: str, la_code: str) -> list[dict[str, Any]]:
    """Metadata of the LA's materialisations of `clean/<dataset>`, newest first."""
    records_filter = AssetRecordsFilter(
        asset_key=clean_asset_key(dataset), asset_partitions=[la_code]
    )
    with DagsterInstance.get() as instance:
        records = instance.fetch_materializations(records_filter, limit=20).records
    return [
        {k: v.value for k, v in record.asset_materialization.metadata.items()}  # type: ignore[union-attr]
        for record in records
    ]


def check_results(service: TrialService, run_id: str) -> dict[tuple[str, str], Any]:
    """(dataset, check) -> the evaluation, for the checks a run reported."""
    with DagsterInstance.get() as instance:
        events = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
    evaluations = [e.dagster_event.event_specific_data for e in events if e.dagster_event]
    return {(ev.asset_key.path[-1], ev.check_name): ev for ev in evaluations}  # type: ignore[union-attr]


def statuses(outcomes: list[FileOutcome]) -> list[tuple[str, str]]:
    return [(f.la_code, f.status) for f in outcomes]


def rerun(service: TrialService, la_code: str, **config: Any) -> tuple[bool, str]:
    """Launch `ingest_return` as a data engineer would from the UI's launchpad."""
    job = service.definitions().resolve_job_def(RETURN_JOB)
    tags = {LA_TAG: la_code, **config.pop("tags", {})}
    with environment(service.env), DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            partition_key=la_code,
            run_config=return_run_config(**config),
            tags=tags,
            raise_on_error=False,
        )
    return result.success, result.run_id


def history_rows(service: TrialService, la_code: str) -> int:
    warehouse = service.warehouse()
    table = warehouse.table("history", "people")
    query = sa.select(sa.func.count()).where(table.c.la_code == la_code)
    with warehouse.engine.connect() as conn:
        count = int(conn.execute(query).scalar_one())
    warehouse.dispose()
    return count


def test_a_corrected_return_replaces_the_earlier_one_and_a_duplicate_changes_nothing(
    service: TrialService,
) -> None:
    service.deliver("201", "people.csv", people_csv(5))
    service.deliver("202", "people.csv", people_csv(3))
    first = service.run()
    loaded = service.clean_people("201")

    service.deliver("201", "people (copy).csv", people_csv(5))
    second = service.run()
    after_duplicate = service.clean_people("201")

    service.deliver("201", "people.csv", people_csv(6, first=3))
    third = service.run()

    assert statuses(first.files) == [("201", "accepted"), ("202", "accepted")]
    assert statuses(second.files) == [("201", "duplicate")]
    assert statuses(third.files) == [("201", "accepted")]
    assert first.exit_code == second.exit_code == third.exit_code == 0
    assert len(loaded) == 5
    assert after_duplicate == loaded
    corrected = service.clean_people("201")
    assert len(corrected) == 6
    assert len(set(corrected) & set(loaded)) == 3  # people 3-5 are in both returns
    assert len(service.clean_people("202")) == 3
    assert history_rows(service, "201") == 11  # both accepted returns are kept
    assert service.inbox("201") == [] and service.inbox("202") == []
    assert len(service.reports("201")) == 3
    assert [m["dagster/row_count"] for m in materialisations(service, "people", "201")] == [6, 5]
    [duplicate] = second.files[0].audit
    assert (duplicate.status, duplicate.dataset) == ("duplicate", None)


def test_a_run_launched_by_the_sensor_on_a_new_service_loads_its_file(
    service: TrialService,
) -> None:
    service.deliver("201", "people.csv", people_csv(3))
    [listed] = open_drop(
        service.env["TRIAL_DROP_URL"], load_key("LANDING", service.env)
    ).list_inbox("201")

    succeeded, _ = rerun(
        service, "201", fingerprint=listed.fingerprint, tags={DROP_OBJECT_TAG: listed.fingerprint}
    )

    assert succeeded
    assert len(service.clean_people("201")) == 3
    assert service.inbox("201") == []


def test_a_run_whose_file_left_the_inbox_does_nothing_and_succeeds(
    service: TrialService,
) -> None:
    path = service.deliver("201", "people.csv", people_csv(3))
    [listed] = open_drop(
        service.env["TRIAL_DROP_URL"], load_key("LANDING", service.env)
    ).list_inbox("201")
    service.deliver("201", "people.csv", people_csv(4))  # corrected before the run started

    succeeded, _ = rerun(
        service, "201", fingerprint=listed.fingerprint, tags={DROP_OBJECT_TAG: listed.fingerprint}
    )

    assert succeeded
    assert service.inbox("201") == ["people.csv"]
    assert path.read_bytes() == people_csv(4)
    assert service.warehouse().submissions("201") == []


def test_the_latest_materialisation_describes_the_return(service: TrialService) -> None:
    content = people_csv(4) + b"PER09999,FAM00001,CHILD,not a date,F,Name\n"
    service.deliver("201", "people.csv", content)

    [outcome] = service.run().files

    [latest] = materialisations(service, "people", "201")[:1]
    assert latest["dagster/row_count"] == 4
    assert latest["rows_received"] == 5
    assert latest["rows_rejected"] == 1
    assert latest["rejected_by_rule"] == {"date_format": 1}
    assert latest["submission_id"] == outcome.submission_id
    columns = [c.name for c in latest["dagster/column_schema"].columns]
    assert columns[:3] == ["person_token", "family_token", "role"]
    assert "first_name" not in columns
    checks = check_results(service, outcome.run_id)
    assert {name for (dataset, name) in checks if dataset == "people"} == {
        "has_valid_rows",
        "row_count_not_halved",
        "not_older_than_previous",
    }
    assert all(ev.passed and ev.partition == "201" for ev in checks.values())


def test_running_a_processed_file_again_changes_nothing(service: TrialService) -> None:
    service.deliver("201", "people.csv", people_csv(5))
    [outcome] = service.run().files
    before = service.warehouse().submissions("201")

    # A re-execution from the UI carries the parent run's tags, the submission among them.
    succeeded, _ = rerun(
        service,
        "201",
        fingerprint=outcome.fingerprint,
        tags={DROP_OBJECT_TAG: outcome.fingerprint, SUBMISSION_TAG: outcome.submission_id},
    )

    assert succeeded
    after = service.warehouse().submissions("201")
    assert [audit_key(r) for r in after] == [audit_key(r) for r in before]
    assert len(after) == 1
    assert history_rows(service, "201") == 5
    assert len(service.clean_people("201")) == 5


def audit_key(row: Any) -> tuple[Any, ...]:
    """An audit row without its processing time."""
    return (row.receipt_id, row.dataset, row.status, row.received_at, row.rows_loaded)


def test_a_return_received_earlier_never_replaces_one_received_later(
    service: TrialService,
) -> None:
    service.deliver("201", "q1.csv", people_csv(3))  # under half of q2: it is never checked
    service.deliver("201", "q2.csv", people_csv(7, first=20))
    summary = service.run()
    latest = service.clean_people("201")
    q1 = summary.files[0]
    assert q1.submission_id is not None

    succeeded, _ = rerun(service, "201", submission_id=q1.submission_id)

    assert statuses(summary.files) == [("201", "accepted"), ("201", "accepted")]
    assert len(latest) == 7
    assert succeeded
    assert service.clean_people("201") == latest
    reasons = {r.submission_id: r.reason for r in service.warehouse().submissions("201")}
    assert reasons[q1.submission_id] == "superseded"


def test_a_file_with_another_las_code_is_rejected_whole(service: TrialService) -> None:
    service.deliver("201", "people.csv", people_csv(4, la_code="202"))

    summary = service.run()

    assert statuses(summary.files) == [("201", "rejected")]
    assert summary.exit_code == 0
    [row] = summary.files[0].audit
    assert (row.dataset, row.reason, row.rows_loaded) == ("people", "la_code_mismatch", 0)
    assert service.clean_people("201") == [] and service.clean_people("202") == []
    assert "REJECTED" in service.reports("201")[0].read_text()
    assert materialisations(service, "people", "201") == []


def test_an_unreadable_file_is_rejected_alone_while_another_las_file_loads(
    service: TrialService,
) -> None:
    service.deliver("201", "returns.xlsx", b"\x00\x01 this is not a spreadsheet \xff")
    service.deliver("202", "people.csv", people_csv(3))

    summary = service.run()

    assert statuses(summary.files) == [("201", "rejected"), ("202", "accepted")]
    assert summary.exit_code == 0
    [row] = summary.files[0].audit
    assert (row.dataset, row.reason) == (None, "unreadable_file")
    assert len(service.clean_people("202")) == 3


def test_a_run_that_fails_fails_alone_and_leaves_its_file_in_the_inbox(
    service: TrialService,
) -> None:
    (service.root / "landing").mkdir()
    (service.root / "landing" / "201").write_text("in the way of LA 201's landing folder")
    service.deliver("201", "Smith family.csv", people_csv(3))
    service.deliver("202", "people.csv", people_csv(3))

    summary = service.run()

    assert statuses(summary.files) == [("201", "failed"), ("202", "accepted")]
    assert summary.exit_code == 1
    assert service.inbox("201") == ["Smith family.csv"]
    assert len(service.clean_people("202")) == 3
    with DagsterInstance.get() as instance:
        failures = instance.all_logs(summary.files[0].run_id, of_type=DagsterEventType.STEP_FAILURE)
    message = failures[0].dagster_event.step_failure_data.error.to_string()  # type: ignore[union-attr]
    assert "LA 201: taking file" in message
    assert "Smith" not in message


def test_a_return_that_halves_the_rows_is_held_until_someone_releases_it(
    service: TrialService,
) -> None:
    service.deliver("201", "people.csv", people_csv(10))
    service.run()
    earlier = service.clean_people("201")

    service.deliver("201", "people.csv", people_csv(4))
    summary = service.run()
    [held] = summary.files
    kept = service.clean_people("201")
    checks = check_results(service, held.run_id)

    [report] = [p for p in service.reports("201") if str(held.submission_id) in p.name]
    held_report = report.read_text()
    assert held.submission_id is not None
    released = release_held(held.submission_id, service.env)
    release_run = released.run_id

    assert held.status == "held"
    assert summary.exit_code == 0  # held is a known end state: it waits for a person
    assert "Result:    HELD FOR REVIEW" in held_report
    assert "people: row_count_not_halved: " in held_report
    assert kept == earlier
    assert history_rows(service, "201") == 14  # the held return is kept in history
    failed = checks[("people", "row_count_not_halved")]
    assert (failed.passed, failed.severity, failed.partition) == (
        False,
        AssetCheckSeverity.ERROR,
        "201",
    )
    assert failed.description == "4 valid rows; the current return has 10"
    assert checks[("people", "has_valid_rows")].passed
    [row] = held.audit
    assert (row.status, row.reason) == ("held", "row_count_not_halved")
    assert released.status == "accepted"
    with pytest.raises(RunnerError, match="is not held"):
        release_held(held.submission_id, service.env)
    assert len(service.clean_people("201")) == 4
    released_check = check_results(service, release_run)[("people", "row_count_not_halved")]
    assert released_check.severity == AssetCheckSeverity.WARN


def test_the_la_report_warns_of_records_missing_from_its_other_returns(
    service: TrialService,
) -> None:
    service.deliver("201", "episodes.csv", episodes_csv(3, newest=date(2025, 3, 1)))

    summary = service.run()

    assert statuses(summary.files) == [("201", "accepted")]
    [report] = service.reports("201")
    text = report.read_text()
    assert "Checks across your datasets (warnings; these rows are loaded):" in text
    assert "episodes, column family_id: 3 rows break orphan_family_id" in text
    assert "episodes, column keyworker_id: 3 rows break orphan_keyworker_id" in text
