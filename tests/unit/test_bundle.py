"""Bundles (``bundle: N``): N short tasks in one SLURM array task, each with its own marker,
log and retries; a failed one is rerun alone."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from fcgtainer import node, proc, tasktable
from fcgtainer.backends.slurm import SlurmBackend, describe_sbatch, render_sbatch
from fcgtainer.backends.slurm_limits import plan_arrays
from fcgtainer.config.job import Job
from fcgtainer.config.site import Site
from fcgtainer.errors import ConfigError
from fcgtainer.plan.tasks import Plan, make_plan
from fcgtainer.runs.journal import RunRecord, TaskRecord
from fcgtainer.runs.monitor import _merge_run
from fcgtainer.runs.rundir import bundle_queues
from fcgtainer.states import State, TaskStatus

pytestmark = pytest.mark.unit
RUN = "11111111-2222-3333-4444-555555555555"


def _site(runs: Path, **extra: Any) -> Site:
    return Site.model_validate({"scheduler": "slurm", "runs_dir": str(runs), **extra})


def _plan(runs: Path, tasks: int, bundle: int | None = 25, **extra: Any) -> Plan:
    job: dict[str, Any] = {
        "name": "short",
        "command": ["true"],
        "matrix": {"n": {"range": [0, tasks]}},
        "resources": {"walltime": 60},
        **extra,
    }
    if bundle is not None:
        job["bundle"] = bundle
    return make_plan(Job.model_validate(job), _site(runs), {}, RUN, runtime="native")


def _option(argv: Sequence[str], name: str) -> str | None:
    return next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")), None)


class Fake:
    """sbatch prints 1000, 1001...; scontrol allows arrays of 101; the rest answers nothing."""

    def __init__(self, max_job_count: int = 10_000) -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.next_job = 1000
        self.config = f"MaxArraySize = 101\nMaxJobCount = {max_job_count}\n"

    def __call__(self, argv: Sequence[str], **kwargs: Any) -> proc.Completed:
        self.calls.append((list(argv), kwargs.get("stdin")))
        if argv[0] == "sbatch":
            self.next_job += 1
            return proc.Completed(tuple(argv), 0, f"{self.next_job - 1}\n", "")
        if argv[0] == "scontrol":
            return proc.Completed(tuple(argv), 0, self.config, "")
        return proc.Completed(tuple(argv), 0, "", "")


def test_300_tasks_by_25_are_12_array_tasks_each_task_once(tmp_path: Path) -> None:
    plan = _plan(tmp_path, 300)
    arrays = plan_arrays(plan, range(300), size=101)
    leaders = [i for a in arrays for i in a.members]
    assert leaders == list(range(0, 300, 25))
    every = [t for a in arrays for i in a.members for t in a.tasks_of(i)]
    assert every == list(range(300))
    assert all(0 <= a.array_index(i) < 101 for a in arrays for i in a.members)

    fake = Fake()
    plan.run_dir.mkdir(parents=True)
    ids = SlurmBackend(plan.site, runner=fake).submit(plan)
    sbatches = [argv for argv, _ in fake.calls if argv[0] == "sbatch"]
    assert [_option(a, "array") for a in sbatches] == ["0,25,50,75,100", "24,49,74,99", "23,48,73"]
    assert _option(sbatches[0], "time") == "00:25:00"  # 25 tasks of 1 min in turn
    assert sorted(ids) == list(range(300))
    assert ids[0] == ids[24] == "1000_0" and ids[25] == "1000_25" and ids[299] == "1002_73"
    assert tasktable.read_bundles(plan.run_dir)[275] == tuple(range(275, 300))
    stdin = next(s for argv, s in fake.calls if argv[0] == "sbatch")
    assert stdin == render_sbatch(plan, 0) and "node/bundle.sh" in (stdin or "")
    # reconcile after a lost answer: the array index of a bundle gives all of its tasks
    lines = "1000_25|RUNNING|None|" + plan.name + "\n"

    def squeue(argv: Sequence[str], **kwargs: Any) -> proc.Completed:
        if argv[0] == "squeue":
            return proc.Completed(tuple(argv), 0, lines, "")
        return Fake()(argv, **kwargs)

    found = SlurmBackend(plan.site, runner=squeue).find(plan)
    assert found == dict.fromkeys(range(25, 50), "1000_25")


def test_the_room_counts_jobs_a_bundle_is_one(tmp_path: Path) -> None:
    """MaxJobCount 6, nothing queued: room for 5 jobs, so 5 bundles of 25 go, 175 wait."""
    plan = _plan(tmp_path, 300)
    plan.run_dir.mkdir(parents=True)
    backend = SlurmBackend(plan.site, runner=Fake(max_job_count=6))
    ids = backend.submit(plan)
    assert sorted(ids) == list(range(125)) and "125 of 300" in backend.note


def test_the_dry_run_writes_the_bundles_before_each_sbatch(tmp_path: Path) -> None:
    text = describe_sbatch(_plan(tmp_path, 60, bundle=30))
    head, sbatch = text.split("sbatch", 1)
    assert "bundles.txt <<'FCGTAINER_EOF'\n" in head
    assert " ".join(map(str, range(30))) + "\n" in head and "node/bundle.sh" in sbatch


def test_bundle_from_the_site_and_its_limits(tmp_path: Path) -> None:
    job = Job.model_validate({"name": "s", "command": ["true"], "matrix": {"n": [1, 2]}})
    assert make_plan(job, _site(tmp_path, bundle=4), {}, RUN, runtime="native").bundle == 4
    with pytest.raises(ConfigError, match="cannot be requeued alone"):
        _plan(tmp_path, 10, bundle=5, checkpoint={"enabled": True})
    condor = Site.model_validate({"scheduler": "htcondor", "runs_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match="not supported on HTCondor"):
        make_plan(job.model_copy(update={"bundle": 2}), condor, {}, RUN, runtime="native")


def _bundle_run(run_dir: Path, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_JOB_ID": "7",
        "SLURM_ARRAY_JOB_ID": "7",
        "SLURM_ARRAY_TASK_ID": "0",
        "SLURM_RESTART_COUNT": "0",
    }
    argv = ["bash", str(run_dir / "node" / "bundle.sh"), str(run_dir), "0"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_each_task_of_a_bundle_has_its_marker_log_and_retries(tmp_path: Path) -> None:
    """Tasks 0..2 in one bundle; 1 fails (retries: 1, so twice), never a SLURM requeue.
    Run again (the bundle requeued, or resubmitted): only the task not done runs."""
    run_dir = tmp_path / "run"
    node.install(run_dir)
    for i in range(3):
        tdir = run_dir / "tasks" / str(i)
        tdir.mkdir(parents=True)
        code = 3 if i == 1 else 0
        script = f'echo "attempt $FCGTAINER_ATTEMPT"; exit {code}'
        (tdir / "argv").write_bytes(f"env\0FCGTAINER_ATTEMPT=1\0sh\0-c\0{script}\0".encode())
        (tdir / "retries").write_text("1\n")
    (run_dir / "bundles.txt").write_text("0 1 2\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "scontrol.log"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    (bin_dir / "scontrol").chmod(0o755)

    done = _bundle_run(run_dir, bin_dir)
    assert done.returncode == 0, done.stderr
    markers = [(run_dir / "tasks" / str(i) / "exit_code").read_text().strip() for i in range(3)]
    assert markers == ["0", "3", "0"]
    attempts = [len((run_dir / "tasks" / str(i) / "attempts").read_text().splitlines())
                for i in range(3)]  # fmt: skip
    assert attempts == [1, 2, 1]
    failed_log = (run_dir / "tasks" / "1" / "task.log").read_text()
    assert "task 1 attempt 1" in failed_log and "task 1 attempt 2" in failed_log
    assert "attempt 2\n" in failed_log  # the payload saw its attempt number
    assert "task 0 attempt" not in failed_log  # each task its own log
    assert not log.exists(), "a bundled task must not requeue the whole bundle"

    (run_dir / "tasks" / "1" / "argv").write_bytes(b"true\0")  # the cause is fixed
    assert _bundle_run(run_dir, bin_dir).returncode == 0
    attempts = [len((run_dir / "tasks" / str(i) / "attempts").read_text().splitlines())
                for i in range(3)]  # fmt: skip
    assert attempts == [1, 3, 1]
    assert (run_dir / "tasks" / "1" / "exit_code").read_text().strip() == "0"


def test_status_shows_a_bundles_later_tasks_as_pending_not_running(tmp_path: Path) -> None:
    """SLURM says the bundle's job runs; of its tasks, only the one it runs now is running."""
    run_dir = tmp_path / "run"
    node.install(run_dir)
    gate = tmp_path / "go"
    for i in range(3):
        tdir = run_dir / "tasks" / str(i)
        tdir.mkdir(parents=True)
        wait = f"while [ ! -e {gate} ]; do sleep 0.05; done" if i == 1 else "true"
        (tdir / "argv").write_bytes(f"sh\0-c\0{wait}\0".encode())
    (run_dir / "bundles.txt").write_text("0 1 2\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "7"}
    bundle = subprocess.Popen(
        ["/bin/bash", str(run_dir / "node" / "bundle.sh"), str(run_dir), "0"], env=env
    )
    try:
        now = run_dir / "tasks" / "0" / "bundle_now"
        for _ in range(200):  # task 1 is running once the bundle names it
            if now.exists() and now.read_text().strip() == "1":
                break
            bundle.poll()
            assert bundle.returncode is None, "the bundle ended before task 1 ran"
            time.sleep(0.05)
        assert bundle_queues(run_dir) == {2: 1}
        run = RunRecord("r" * 32, "short", "s", "slurm", run_dir, 0.0, "submitted", "k", {})
        tasks = [
            TaskRecord("r", i, str(i), "7_0", TaskStatus(State.PENDING), 0.0) for i in range(3)
        ]
        updates = _merge_run(run, tasks, {"7_0": TaskStatus(State.RUNNING)}, time.time())
        assert updates[0].state is State.SUCCEEDED
        assert updates[1].state is State.RUNNING
        assert updates[2].state is State.PENDING
        assert updates[2].reason == "waits its turn in its bundle (task 1 runs)"
    finally:
        gate.touch()
        bundle.wait(timeout=30)
    assert [(run_dir / "tasks" / str(i) / "exit_code").read_text() for i in range(3)] == ["0\n"] * 3
    assert bundle_queues(run_dir) == {}  # the last task ran: nothing waits
