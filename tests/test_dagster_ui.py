"""`open_ui` starts `dagster dev` on the service's instance with the code location loaded, and
`stop_ui` stops every process it started (SIGINT to its own session)."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from test_dagster_definitions import TrialService, service

from ingest.ui import open_ui, stop_ui

__all__ = ["service"]
pytestmark = pytest.mark.slow

LOCATIONS_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name locationOrLoadError { __typename } } } } }
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def graphql(port: int, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def wait_for_location(port: int, deadline: float) -> list[dict[str, Any]]:
    while time.monotonic() < deadline:
        try:
            entries = graphql(port, LOCATIONS_QUERY)["data"]["workspaceOrError"]["locationEntries"]
        except (urllib.error.URLError, ConnectionError, KeyError, TypeError):
            entries = []
        if entries and all(e["locationOrLoadError"] for e in entries):
            return list(entries)
        time.sleep(2)
    raise AssertionError("the Dagster UI did not load the code location in time")


def session_alive(session: int) -> bool:
    try:
        os.killpg(session, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_ui_serves_the_code_location_and_stops_on_request(service: TrialService) -> None:
    port = free_port()
    process = open_ui(service.env, port)
    try:
        entries = wait_for_location(port, time.monotonic() + 240)
    finally:
        stop_ui(process, timeout=90)

    assert [e["locationOrLoadError"]["__typename"] for e in entries] == ["RepositoryLocation"]
    assert [e["name"] for e in entries] == ["trial_ingest"]  # whatever the checkout is called
    assert process.returncode is not None
    deadline = time.monotonic() + 30
    while session_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(1)
    assert not session_alive(process.pid)
