"""`trial-ingest ui`: `dg dev` on the service's Dagster instance, started and stopped.

It loads the code location through a workspace file written into DAGSTER_HOME, so the location
is named `trial_ingest` whatever the checkout's folder is called, and it starts in DAGSTER_HOME,
so Dagster does not warn about the repository's own `dagster.yaml` (a template that
`ingest.instance` copies into DAGSTER_HOME).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from ingest.instance import (
    REPOSITORY,
    prepare_dagster_home,
    service_environment,
    service_settings,
)

LOCATION_NAME = "trial_ingest"
DEFINITIONS_MODULE = "ingest.definitions"


def open_ui(env: Mapping[str, str], port: int = 3000) -> subprocess.Popen[bytes]:
    """Start `dg dev` on the service's instance, in its own session.

    Its own session, because `dagster dev` started in the background from a non-interactive
    shell ignores SIGINT and SIGTERM; stop it with `stop_ui` (SIGINT to the session).
    """
    settings = service_settings(env)
    env = service_environment(env, settings)
    home = prepare_dagster_home(settings)
    workspace = write_workspace(home)
    dg = Path(sys.executable).with_name("dg")
    command = [str(dg), "dev", "--workspace", str(workspace), "--port", str(port)]
    venv = Path(sys.executable).parents[1]
    child_env = {**env, "VIRTUAL_ENV": str(venv)}
    return subprocess.Popen(command, cwd=home, env=child_env, start_new_session=True)


def write_workspace(home: Path) -> Path:
    """A workspace file naming the code location `trial_ingest`, loaded from this checkout."""
    path = home / "workspace.yaml"
    path.write_text(
        "load_from:\n"
        "  - python_module:\n"
        f"      module_name: {DEFINITIONS_MODULE}\n"
        f"      working_directory: {json.dumps(str(REPOSITORY))}\n"
        f"      location_name: {LOCATION_NAME}\n",
        encoding="utf-8",
    )
    return path


def stop_ui(process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """SIGINT to the UI's session, then SIGKILL if it has not stopped within `timeout`."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def ui_environment(env: Mapping[str, str], demo_env_file: Path) -> dict[str, str]:
    """The environment, or, when it configures no trial at all, the last demo's settings."""
    if any(name.startswith("TRIAL_") for name in env) or not demo_env_file.is_file():
        return dict(env)
    print(f"No TRIAL_ settings in the environment: showing the demo ({demo_env_file}).")
    lines = demo_env_file.read_text(encoding="utf-8").splitlines()
    return {**env, **dict(line.split("=", 1) for line in lines if "=" in line)}
