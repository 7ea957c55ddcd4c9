"""`la_drop_sensor`, evaluated by Dagster itself on a real drop folder and instance."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from dagster import DagsterInstance, DagsterRunStatus, build_sensor_context
from dagster._core.definitions.sensor_definition import (
    SensorExecutionData,  # what `evaluate_tick` returns: Dagster has no public name for it
)
from hypothesis import given, settings
from hypothesis import strategies as st
from test_dagster_definitions import TrialService, people_csv, service

from ingest.jobs import DROP_OBJECT_TAG, LA_TAG, RETURN_JOB, return_run_config
from ingest.sensors import SENSOR_NAME, read_cursor, scan_drop, write_cursor
from ingest.storage.drop import DropError, DropObject, open_drop
from pseudonymise.keys import load_key

__all__ = ["service"]

# An LA's file name is data (it may name a family): it must never leave the drop.
NAME = "Smith family referral 2024.csv"


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    """In memory: the sensor keeps nothing but its cursor, which the tests pass along."""
    with DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral


def tick(
    service: TrialService, instance: DagsterInstance, cursor: str | None = None
) -> SensorExecutionData:
    defs = service.definitions()
    with build_sensor_context(
        instance=instance, cursor=cursor, resources=defs.resources, definitions=defs
    ) as context:
        return defs.resolve_sensor_def(SENSOR_NAME).evaluate_tick(context)


def everything_said(data: SensorExecutionData) -> str:
    requests = [
        (r.partition_key, dict(r.tags), r.run_config, r.run_key) for r in data.run_requests or []
    ]
    return json.dumps([requests, data.cursor, data.skip_message], default=str)


def test_a_new_file_is_one_run_request_that_never_names_the_file(
    service: TrialService, instance: DagsterInstance
) -> None:
    service.deliver("201", NAME, people_csv(3))

    data = tick(service, instance)

    [request] = data.run_requests or []
    fingerprint = request.tags[DROP_OBJECT_TAG]
    assert request.partition_key == "201"
    service_tags = {k: v for k, v in request.tags.items() if not k.startswith("dagster/")}
    assert service_tags == {LA_TAG: "201", DROP_OBJECT_TAG: fingerprint}
    assert request.run_config == return_run_config(fingerprint=fingerprint)
    said = everything_said(data)
    assert all(word not in said for word in ("Smith", "family", "referral", ".csv"))


def test_a_file_already_requested_is_not_requested_again(
    service: TrialService, instance: DagsterInstance
) -> None:
    service.deliver("201", NAME, people_csv(3))
    first = tick(service, instance)

    second = tick(service, instance, first.cursor)

    assert len(first.run_requests or []) == 1
    assert not second.run_requests
    assert second.skip_message is not None
    assert second.skip_message.startswith("0 new file(s)")


def test_a_corrected_upload_under_the_same_name_is_new(
    service: TrialService, instance: DagsterInstance
) -> None:
    service.deliver("201", NAME, people_csv(3))
    first = tick(service, instance)

    service.deliver("201", NAME, people_csv(4))
    second = tick(service, instance, first.cursor)

    [old] = first.run_requests or []
    [new] = second.run_requests or []
    assert new.tags[DROP_OBJECT_TAG] != old.tags[DROP_OBJECT_TAG]


def test_a_file_that_left_the_inbox_leaves_the_cursor(
    service: TrialService, instance: DagsterInstance
) -> None:
    path = service.deliver("201", NAME, people_csv(3))
    stat = path.stat()
    first = tick(service, instance)
    path.unlink()
    emptied = tick(service, instance, first.cursor)

    path.write_bytes(people_csv(3))  # the very same file, even its time, dropped again
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = tick(service, instance, emptied.cursor)

    assert read_cursor(emptied.cursor) == {}
    assert len(again.run_requests or []) == 1


def test_files_are_requested_in_upload_order(
    service: TrialService, instance: DagsterInstance
) -> None:
    service.deliver("202", "b.csv", people_csv(2))
    service.deliver("202", "a.csv", people_csv(3))
    service.deliver("201", "c.csv", people_csv(4))

    data = tick(service, instance)

    drop = open_drop(service.env["TRIAL_DROP_URL"], load_key("LANDING", service.env))
    order = [
        obj.fingerprint
        for la in ("201", "202")
        for obj in sorted(drop.list_inbox(la), key=lambda o: int(o.version))
    ]
    assert [r.tags[DROP_OBJECT_TAG] for r in data.run_requests or []] == order


def test_a_folder_not_in_the_allocation_is_counted_never_requested(
    service: TrialService, instance: DagsterInstance
) -> None:
    service.deliver("999", NAME, people_csv(3))

    data = tick(service, instance)

    assert not data.run_requests
    assert data.skip_message == (
        "0 new file(s); 1 folder(s) on the drop are not LAs of the allocation and are ignored"
    )
    assert "999" not in everything_said(data)


def test_without_an_allocation_the_tick_fails_and_says_what_to_set(
    service: TrialService, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRIAL_ALLOCATION_FILE")
    service.env.pop("TRIAL_ALLOCATION_FILE")
    service.reload()

    with pytest.raises(Exception, match="TRIAL_ALLOCATION_FILE is not set"):
        tick(service, instance)


def test_a_file_whose_run_is_under_way_is_not_requested_again(
    service: TrialService, instance: DagsterInstance
) -> None:
    service.deliver("201", NAME, people_csv(3))
    [request] = tick(service, instance).run_requests or []
    instance.create_run_for_job(
        service.definitions().resolve_job_def(RETURN_JOB),
        run_config=request.run_config,
        tags=dict(request.tags),
        status=DagsterRunStatus.STARTED,
    )

    fresh = tick(service, instance)  # `trial-ingest run` starts from an empty cursor

    assert not fresh.run_requests


@dataclass
class FailingInbox:
    """A drop on which one LA's inbox cannot be listed."""

    failing: str

    def list_inbox(self, la_code: str) -> list[DropObject]:
        if la_code == self.failing:
            raise DropError(f"cannot list LA {la_code}")
        return [DropObject(la_code, "x.csv", 1, "5", fingerprint=f"fp-{la_code}")]

    def la_codes_present(self) -> list[str]:
        return ["201", "202"]


def test_one_las_failing_inbox_does_not_hold_up_the_others() -> None:
    drop = FailingInbox(failing="201")

    scan = scan_drop(drop, ["201", "202"], {"201": {"fp-old"}}, set())  # type: ignore[arg-type]

    assert [obj.fingerprint for obj in scan.new] == ["fp-202"]
    assert scan.unlisted_las == ["201"]
    assert scan.requested == {"201": ["fp-old"], "202": ["fp-202"]}


@settings(max_examples=40)
@given(
    st.dictionaries(
        st.from_regex(r"[0-9]{3}", fullmatch=True),
        st.sets(st.from_regex(r"[0-9a-f]{24}", fullmatch=True), min_size=1),
    )
)
def test_the_cursor_round_trips(requested: dict[str, set[str]]) -> None:
    assert read_cursor(write_cursor(requested)) == requested


@pytest.mark.parametrize(
    "cursor", [None, "", "not json", "[]", '{"v": 99}', '{"v": 1, "requested": 3}']
)
def test_an_unreadable_cursor_starts_afresh(cursor: str | None) -> None:
    assert read_cursor(cursor) == {}
