"""The run directory: specs, argv files, the wrapper, logs and exit-code markers.

Layout (on a filesystem the compute nodes share)::

    RUN_DIR/manifest.json         job and site as loaded, versions, image
    RUN_DIR/wrapper.sh            the job wrapper every backend runs
    RUN_DIR/tasks/<i>/spec.json   parameters, as data
    RUN_DIR/tasks/<i>/argv        the task's argv, NUL-separated
    RUN_DIR/tasks/<i>/task.log    stdout and stderr of every attempt (appended)
    RUN_DIR/tasks/<i>/exit_code   the marker: written last, atomically, by the wrapper
    RUN_DIR/out/<i>/              the payload's output and working directory
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from fcgtainer.container import task_argv
from fcgtainer.plan import Plan, task_spec


def write_run_dir(plan: Plan, manifest: Mapping[str, Any], host_env: Mapping[str, str]) -> None:
    """Write everything the tasks need before the scheduler sees them."""
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(plan.run_dir / "manifest.json", json.dumps(manifest, indent=2, default=str))
    wrapper = resources.files("fcgtainer").joinpath("wrapper.sh").read_text()
    _atomic_write(plan.run_dir / "wrapper.sh", wrapper)
    os.chmod(plan.run_dir / "wrapper.sh", 0o755)
    retries = str(plan.job.retries)
    for task in plan.tasks:
        tdir = plan.task_dir(task.index)
        tdir.mkdir(parents=True, exist_ok=True)
        plan.out_dir(task.index).mkdir(parents=True, exist_ok=True)
        (tdir / "spec.json").write_text(json.dumps(task_spec(plan, task), indent=1))
        argv = task_argv(plan, task, host_env)
        (tdir / "argv").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
        (tdir / "retries").write_text(retries)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_marker(run_dir: Path, index: int) -> int | None:
    """The exit code the wrapper wrote for a task, or None while there is none."""
    try:
        text = (run_dir / "tasks" / str(index) / "exit_code").read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return int(text)
    except ValueError:
        return None


def log_path(run_dir: Path, index: int) -> Path:
    """Where a task's combined stdout and stderr go."""
    return run_dir / "tasks" / str(index) / "task.log"


def attempts(run_dir: Path, index: int) -> int:
    """How many attempts the wrapper recorded for a task."""
    try:
        return len((run_dir / "tasks" / str(index) / "attempts").read_text().splitlines())
    except FileNotFoundError:
        return 0
