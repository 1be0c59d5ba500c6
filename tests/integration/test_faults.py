"""Faults the scheduler or the person brings, on the testbed's real SLURM.

    tests/testbed/run-integration tests/integration/test_faults.py

- the CLI killed (SIGTERM, SIGINT) while ``sbatch`` is running: the run says how to resume,
  the same ``submit`` resumes or adopts it, and every task runs once;
- preemption: ``scontrol requeue`` of a running task ends in checkpoint, requeue, resume.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fcgtainer import proc
from fcgtainer.runs import monitor
from fcgtainer.runs.journal import Journal
from fcgtainer.runs.rundir import attempts, log_path
from fcgtainer.states import State

REPO = Path(__file__).resolve().parent.parent.parent
DEADLINE_S = 600.0  # a hang guard, not a performance threshold
pytestmark = [pytest.mark.integration, pytest.mark.slurm]


@pytest.fixture
def workspace(shared_tmp_path: Path) -> Iterator[Path]:
    """The testbed SLURM profile with a slow ``sbatch`` (3 s before the real one), the jobs."""
    slow = shared_tmp_path / "slow-sbatch"
    slow.write_text('#!/bin/sh\nsleep 3\nexec sbatch "$@"\n')
    slow.chmod(0o755)
    base = (REPO / "sites" / "testbed-slurm.yaml").read_text()
    site = base.replace("~/fcgtainer-runs", str(shared_tmp_path / "runs"))
    site += f"  sbatch: {slow}\n"
    (shared_tmp_path / "site.yaml").write_text(site)
    # without __pycache__: a local native run leaves it private to its owner (umask 077)
    shutil.copytree(
        REPO / "jobs" / "hello" / "hello",
        shared_tmp_path / "hello" / "hello",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (shared_tmp_path / "ckpt").mkdir()
    subprocess.run(
        [
            "cp",
            str(REPO / "tests" / "data" / "checkpointing" / "ckpt.py"),
            str(shared_tmp_path / "ckpt"),
        ],
        check=True,
    )
    yield shared_tmp_path
    for line in proc.run(["squeue", "-h", "--me", "--format=%j"], check=False).stdout.split():
        if line.startswith("fcg-fault"):
            subprocess.run(["scancel", f"--name={line}"], capture_output=True, check=False)


def _job(workspace: Path, name: str, command: str, tasks: int, extra: str = "") -> Path:
    path = workspace / ("hello" if command == "hello" else "ckpt") / f"{name}.yaml"
    path.write_text(
        textwrap.dedent(f"""\
            name: {name}
            command: [python3, -m, {command}, --spec, "{{spec}}"]
            params: {{greeting: hello, sleep: 0, fail_task: -1, steps: 0, pause: 0.5}}
            matrix:
              n: {{range: [0, {tasks}]}}
            resources: {{cpus: 1, memory: 64MiB, walltime: "00:10:00"}}
            """)
        + extra
    )
    return path


def _cli(workspace: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "fcgtainer", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_terminal(journal: Journal, run_id: str) -> list[State]:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        tasks = monitor.refresh(journal, journal.run(run_id))
        if all(t.status.state.terminal for t in tasks):
            return [t.status.state for t in tasks]
        assert time.monotonic() < deadline, [t.status for t in tasks]
        time.sleep(1.0)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_signalled_during_submit_then_same_submit_runs_each_task_once(
    workspace: Path, sig: signal.Signals
) -> None:
    job = _job(workspace, f"fault-{sig.name.lower()}", "hello", 3)
    args = ("submit", str(job), "--site", str(workspace / "site.yaml"))
    first = _cli(workspace, *args)
    journal = Journal()
    deadline = time.monotonic() + 60
    while not journal.runs():  # the run is journaled before sbatch is called
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.1)
    time.sleep(1.0)  # sbatch (the slow one) is running now
    first.send_signal(sig)
    first.wait(timeout=60)
    run = journal.runs()[0]
    tasks = monitor.refresh(journal, run)
    assert all(t.status.state is not State.UNKNOWN or "resume" in t.status.reason for t in tasks)
    again = _cli(workspace, *args)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert run.id[:8] in out, out  # the same run, adopted or resumed: no second run
    assert _wait_terminal(journal, run.id) == [State.SUCCEEDED] * 3
    for i in range(3):
        assert attempts(run.run_dir, i) == 1, f"task {i} ran {attempts(run.run_dir, i)} times"
    assert len(journal.runs()) == 1


def test_preempted_by_scontrol_requeue_resumes_from_its_checkpoint(workspace: Path) -> None:
    extra = "checkpoint: {enabled: true, signal_margin: 20}\n"
    job = _job(workspace, "fault-preempt", "ckpt", 1, extra)
    done = _cli(workspace, "submit", str(job), "--site", str(workspace / "site.yaml"),
                "--set", "steps=60", "--set", "pause=0.5")  # fmt: skip
    _, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    journal = Journal()
    run = journal.runs()[0]
    deadline = time.monotonic() + DEADLINE_S
    log = log_path(run.run_dir, 0)
    while not (log.exists() and "resumed from step" in log.read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    time.sleep(5)  # a few steps in
    task = monitor.refresh(journal, run)[0]
    assert task.backend_id
    proc.run(["scontrol", "requeue", task.backend_id])
    assert _wait_terminal(journal, run.id) == [State.SUCCEEDED]
    text = log.read_text()
    resumed = [line for line in text.splitlines() if "resumed from step" in line]
    assert len(resumed) >= 2 and not resumed[-1].endswith("step 0"), text
    assert attempts(run.run_dir, 0) >= 2
