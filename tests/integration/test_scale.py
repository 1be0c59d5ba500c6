"""A 300-task run on the testbed's SLURM under limits scaled down: arrays of at most 101
tasks (``MaxArraySize`` 101) and at most 150 jobs queued (``MaxJobCount`` 150), given by
the site profile. Submit sends what fits and returns; the run's background feeder submits
the rest as tasks finish, with no fcgtainer command running; every task runs exactly once.
The same code splits at 1001 / 10,000 on a real cluster (tests/unit/test_slurm_limits.py).

    tests/testbed/run-integration tests/integration/test_scale.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fcgtainer.runs import monitor
from fcgtainer.runs.journal import Journal
from fcgtainer.runs.rundir import attempts, read_marker
from fcgtainer.states import State

REPO = Path(__file__).resolve().parents[2]
TASKS = 300
ARRAY, JOBS = 101, 150
DEADLINE_S = 1200.0  # a hang guard, not a performance threshold
pytestmark = [pytest.mark.integration, pytest.mark.slurm]
NAMES: list[str] = []


@pytest.fixture(autouse=True)
def _no_stray_jobs() -> Iterator[None]:
    yield
    for name in NAMES:
        subprocess.run(["scancel", "--me", f"--name={name}"], capture_output=True)


def in_queue() -> int:
    """The user's jobs and array tasks SLURM holds (pending or running)."""
    out = subprocess.run(
        ["squeue", "--me", "--noheader", "--array", "--format=%i"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return len(out.split())


def test_300_tasks_split_and_fed_each_once(shared_tmp_path: Path) -> None:
    site = yaml.safe_load((REPO / "sites" / "testbed-slurm.yaml").read_text())
    site["runs_dir"] = str(shared_tmp_path / "runs")
    site["slurm"].update(
        {"limits": {"max_array_size": ARRAY, "max_job_count": JOBS}, "feed_every": 2}
    )
    (shared_tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    shutil.copytree(
        REPO / "jobs" / "hello" / "hello",
        shared_tmp_path / "hello" / "hello",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    job = shared_tmp_path / "hello" / "scale.yaml"
    job.write_text(
        textwrap.dedent(f"""\
            command: [python3, -m, hello, --spec, "{{spec}}"]
            params: {{greeting: hello, sleep: 0, fail_task: -1}}
            matrix:
              n: {{range: [0, {TASKS}]}}
            resources: {{cpus: 1, memory: 64MiB, walltime: "00:10:00"}}
            """)
    )
    argv = [sys.executable, "-m", "fcgtainer", "submit", str(job)]
    argv += ["--site", str(shared_tmp_path / "site.yaml")]
    env = {**os.environ, "COLUMNS": "250"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wait for room" in done.stdout, done.stdout
    journal = Journal()
    (run,) = [r for r in journal.runs() if r.job == "scale"]
    NAMES.append(f"fcg-scale-{run.id}")
    assert run.phase == "feeding"

    most = 0
    deadline = time.monotonic() + DEADLINE_S
    while True:
        most = max(most, in_queue())
        tasks = monitor.refresh(journal, journal.run(run.id))
        assert not any(t.status.state is State.LOST for t in tasks)
        if all(t.status.state.terminal for t in tasks):
            break
        assert time.monotonic() < deadline, monitor.step_counts(run, tasks)
        time.sleep(1.0)

    print(f"\nmost jobs queued at once: {most}")
    assert [t.status.state for t in tasks] == [State.SUCCEEDED] * TASKS
    assert [attempts(run.run_dir, i) for i in range(TASKS)] == [1] * TASKS, "each once"
    assert all(read_marker(run.run_dir, i) == 0 for i in range(TASKS))
    assert most <= JOBS, f"{most} jobs queued at once: more than MaxJobCount {JOBS}"
    arrays: dict[str, list[int]] = {}
    for task in tasks:
        job_id, index = str(task.backend_id).split("_")
        arrays.setdefault(job_id, []).append(int(index))
    assert len(arrays) >= 3 and all(max(ix) < ARRAY for ix in arrays.values()), arrays
    for i in (0, 150, 299):  # each task saw its own run-wide index
        spec = json.loads((run.run_dir / "tasks" / str(i) / "spec.json").read_text())
        assert spec["task"] == i and spec["params"]["n"] == i
    log = (run.run_dir / "feeder.log").read_text()
    assert "waiting task(s)" in log and "done" in log, log
    assert journal.run(run.id).phase != "feeding"
