"""The job wrapper on every backend: the payload's real attempt number, a checkpoint signal
before the walltime where the scheduler sends none, requeues bounded by max_requeues."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fcgtainer import node
from fcgtainer.runs import monitor
from fcgtainer.runs import submit as runs
from fcgtainer.runs.journal import Journal
from fcgtainer.runs.rundir import attempts, requeues
from fcgtainer.states import State

pytestmark = pytest.mark.unit
Write = Callable[[str, str], Path]


def _wait(predicate: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def _terminal(journal: Journal, run_id: str) -> bool:
    return all(t.status.state.terminal for t in monitor.refresh(journal, journal.run(run_id)))


SEEN = """\
import json, os, sys
spec = json.load(open(sys.argv[1]))
with open("seen", "a") as fh:
    fh.write(os.environ["FCGTAINER_ATTEMPT"] + " " + str(spec["attempt"]) + "\\n")
sys.exit(85)
"""


def test_payload_sees_its_attempt_number(write: Write, local_site: Path) -> None:
    write("jobs/att/seen.py", SEEN)
    job = write(
        "jobs/att/job.yaml", 'command: [python3, "{job_dir}/seen.py", "{spec}"]\nmax_requeues: 2\n'
    )
    journal = Journal()
    plan = runs.plan_run(str(job), str(local_site), [])
    runs.submit(plan, journal)
    _wait(lambda: _terminal(journal, plan.run_id))
    assert (plan.out_dir(0) / "seen").read_text() == "1 1\n2 2\n3 3\n"
    assert json.loads((plan.task_dir(0) / "spec.json").read_text())["attempt"] == 3
    task = journal.tasks(plan.run_id)[0]
    assert task.status.state is State.FAILED and "max_requeues reached" in task.status.reason


CHECKPOINTER = (
    "[ -e saved ] && exit 0; trap 'echo saved > saved; exit 85' USR2; sleep 60 & wait $!; exit 1"
)


def test_checkpoint_signal_before_the_walltime_then_requeue(write: Write, local_site: Path) -> None:
    job = write(
        "jobs/ck/job.yaml",
        f'command: [bash, -c, "{CHECKPOINTER}"]\n'
        "resources: {walltime: 12}\n"
        "checkpoint: {enabled: true, signal_margin: 10}\n",
    )
    journal = Journal()
    plan = runs.plan_run(str(job), str(local_site), [])
    start = time.monotonic()
    runs.submit(plan, journal)
    _wait(lambda: _terminal(journal, plan.run_id), timeout=60)
    assert time.monotonic() - start < 10  # checkpointed at 2 s, not killed at 12 s
    task = journal.tasks(plan.run_id)[0]
    assert task.status.state is State.SUCCEEDED, task.status
    assert attempts(plan.run_dir, 0) == 2 and requeues(plan.run_dir, 0) == 1
    log = (plan.task_dir(0) / "task.log").read_text()
    assert "asking the payload to checkpoint (SIGUSR2)" in log
    assert "walltime of 12 s reached" not in log


def _slurm_wrapper_run(tmp_path: Path, done_requeues: int, limit: int) -> tuple[int, Path]:
    run_dir = tmp_path / "run"
    tdir = run_dir / "tasks" / "0"
    tdir.mkdir(parents=True)
    node.install(run_dir)
    (tdir / "argv").write_bytes(b"sh\0-c\0exit 85\0")
    (tdir / "max_requeues").write_text(str(limit))
    if done_requeues:
        (tdir / "requeues").write_text(str(done_requeues))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "scontrol.log"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    (bin_dir / "scontrol").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_JOB_ID": "7",
        "SLURM_ARRAY_JOB_ID": "7",
        "SLURM_ARRAY_TASK_ID": "0",
        "SLURM_RESTART_COUNT": str(done_requeues),
    }
    done = subprocess.run(
        ["bash", str(run_dir / "wrapper.sh"), str(run_dir), "0"], env=env, timeout=60, check=False
    )
    return done.returncode, log


def test_slurm_requeue_is_bounded_by_max_requeues(tmp_path: Path) -> None:
    code, log = _slurm_wrapper_run(tmp_path / "a", done_requeues=0, limit=1)
    assert code == 85 and log.read_text() == "requeue 7_0\n"
    code, log = _slurm_wrapper_run(tmp_path / "b", done_requeues=1, limit=1)
    assert not log.exists(), "requeued past max_requeues"
    assert code == 2  # HTCondor does not restart it either (checkpoint_exit_code is 85)
    assert (tmp_path / "b" / "run" / "tasks" / "0" / "requeue_limit").exists()


@pytest.mark.parametrize(
    ("htcondor", "expected"),
    [
        ({}, 7200),
        ({"max_runtime": 3600}, 3600),
        ({"job_flavour": "espresso"}, 1200),
        ({"job_flavour": "nextweek", "max_runtime": 5400}, 5400),
    ],
)
def test_htcondor_timer_counts_from_maxruntime_or_flavour(
    tmp_path: Path, htcondor: dict[str, object], expected: int
) -> None:
    """On HTCondor the wrapper's checkpoint timer counts from what the pool grants, so a
    task checkpoints before MaxRuntime / JobFlavour removes it."""
    from fcgtainer.config.job import Job
    from fcgtainer.config.site import Site
    from fcgtainer.plan.tasks import make_plan
    from fcgtainer.runs.rundir import effective_walltime, signal_margin

    job = Job.model_validate(
        {
            "name": "t",
            "command": ["true"],
            "resources": {"walltime": "02:00:00"},
            "checkpoint": {"enabled": True, "signal_margin": 300},
        }
    ).model_copy(update={"job_dir": str(tmp_path)})
    site = Site.model_validate(
        {"scheduler": "htcondor", "runs_dir": str(tmp_path), "htcondor": htcondor}
    )
    plan = make_plan(job, site, {}, "0123456789", runtime="native")
    assert effective_walltime(plan) == expected
    assert signal_margin(plan) == 300
