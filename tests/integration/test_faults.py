"""Faults the scheduler or the person brings, on the testbed's real SLURM.

    tests/testbed/run-integration tests/integration/test_faults.py

- the CLI killed (SIGTERM, SIGINT) while ``sbatch`` is running: the run says how to resume,
  the same ``submit`` resumes or adopts it, and every task runs once;
- preemption: ``scontrol requeue`` of a running task ends in checkpoint, requeue, resume;
- the node drained under running tasks (the testbed user is a SLURM admin for this): they
  finish, the waiting one shows SLURM's reason until the node is resumed, then runs;
- out of disk in the runs directory, on the testbed's small tmpfs
  (``FCG_TESTBED_SMALL_DISK``): full at submit, one clear error, and the same ``submit``
  resumes; filled by the task, it ends failed saying so and ``resubmit`` reruns it.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fcgtainer import proc
from fcgtainer.runs import monitor
from fcgtainer.runs.journal import Journal, RunRecord
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
    (shared_tmp_path / "fill").mkdir()
    shutil.copy(REPO / "tests" / "data" / "diskfill" / "fill.py", shared_tmp_path / "fill")
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
    path = workspace / ("hello" if command == "hello" else command) / f"{name}.yaml"
    path.write_text(
        textwrap.dedent(f"""\
            name: {name}
            command: [python3, -m, {command}, --spec, "{{spec}}"]
            params: {{greeting: hello, sleep: 0, fail_task: -1, steps: 0, pause: 0.5, mib: 0}}
            matrix:
              n: {{range: [0, {tasks}]}}
            resources: {{cpus: 1, memory: 64MiB, walltime: "00:10:00"}}
            """)
        + extra
    )
    return path


def _foreground() -> None:
    """SIGINT as at a terminal: a test started in the background inherits it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(workspace: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "250"}  # rich: no wrapped reasons
    return subprocess.Popen(
        [sys.executable, "-m", "fcgtainer", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_foreground,
    )


def _done(workspace: Path, *args: str) -> tuple[int, str, str]:
    """Run the CLI to its end: exit code, stdout, stderr."""
    cli = _cli(workspace, *args)
    out, err = cli.communicate(timeout=120)
    return cli.returncode, out, err


def _site(workspace: Path, runs_dir: Path) -> Path:
    """The testbed SLURM profile as it is (the real ``sbatch``), with its runs under runs_dir."""
    base = (REPO / "sites" / "testbed-slurm.yaml").read_text()
    path = workspace / f"site-{runs_dir.name}.yaml"
    path.write_text(base.replace("~/fcgtainer-runs", str(runs_dir)))
    return path


def _submitted(workspace: Path, job: Path, site: Path, *sets: str) -> tuple[Journal, RunRecord]:
    """Submit ``job`` to ``site`` with ``--set`` values (exit 0): the journal and the run."""
    argv = ["submit", str(job), "--site", str(site)]
    for value in sets:
        argv += ["--set", value]
    code, _, err = _done(workspace, *argv)
    assert code == 0, err
    journal = Journal()
    return journal, journal.runs()[0]


def _wait_for(probe: Callable[[], object], what: str) -> object:
    deadline = time.monotonic() + DEADLINE_S
    while not (value := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1.0)
    return value


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


def _node() -> str:
    return proc.run(["sinfo", "-h", "-N", "-o", "%N"]).stdout.split()[0]


def test_node_drained_under_running_tasks_they_finish_the_waiting_one_runs_after_resume(
    workspace: Path,
) -> None:
    """Two tasks run on the node's 2 CPUs, the third waits; the admin drains the node."""
    job = _job(workspace, "fault-drain", "hello", 3)
    journal, run = _submitted(
        workspace, job, _site(workspace, workspace / "runs-drain"), "sleep=12"
    )

    def states() -> list[State]:
        return [t.status.state for t in monitor.refresh(journal, run)]

    _wait_for(lambda: states() == [State.RUNNING, State.RUNNING, State.PENDING], "2 running")
    node = _node()
    try:
        proc.run(["scontrol", "update", f"NodeName={node}", "State=DRAIN",
                  "Reason=fcgtainer test: drained under a running task"])  # fmt: skip
        _wait_for(lambda: states()[:2] == [State.SUCCEEDED] * 2, "the running tasks to end")
        waiting = monitor.refresh(journal, run)[2]
        assert waiting.status.state is State.PENDING and "DRAIN" in waiting.status.reason
        code, out, err = _done(workspace, "status", run.id)
        assert code == 0, err
        row = next(line for line in out.splitlines() if "n=2" in line)
        assert "pending" in row and "DRAIN" in row, out
    finally:
        proc.run(["scontrol", "update", f"NodeName={node}", "State=RESUME"])
    assert _wait_terminal(journal, run.id) == [State.SUCCEEDED] * 3
    for i in range(3):
        assert attempts(run.run_dir, i) == 1, f"task {i} ran {attempts(run.run_dir, i)} times"


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A fresh directory on the testbed's small filesystem (a 4 MiB tmpfs), removed after."""
    base = os.environ.get("FCG_TESTBED_SMALL_DISK", "")
    if not base or not os.path.ismount(base):
        pytest.fail(
            f"no small filesystem at FCG_TESTBED_SMALL_DISK={base!r} (testbed up mounts it)"
        )
    fs = os.statvfs(base)
    assert fs.f_blocks * fs.f_frsize <= 64 << 20, f"{base} is no small filesystem: not filling it"
    left = sorted(os.listdir(base))
    assert fs.f_bavail * 4 >= fs.f_blocks * 3, f"{base} is already in use (left over: {left})"
    path = Path(base) / f"faults-{os.getpid()}-{time.monotonic_ns()}"
    path.mkdir()
    yield path
    shutil.rmtree(path)


def _fill(path: Path, leave: int = 0) -> None:
    """Write ``path`` until the filesystem has at most ``leave`` bytes free (ENOSPC if 0)."""
    with open(path, "wb") as out:
        while True:
            fs = os.statvfs(path)
            room = fs.f_bavail * fs.f_frsize - leave
            if room <= 0:
                return
            try:
                out.write(b"\0" * min(room, 1 << 20))
                out.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                return


def _queued(run_id: str) -> str:
    """What squeue has of a run's jobs (their comment names the run)."""
    out = proc.run(["squeue", "-h", "--me", "--format=%i %k"]).stdout
    return "".join(line for line in out.splitlines(keepends=True) if run_id in line)


def test_runs_dir_full_at_submit_is_one_error_then_the_same_submit_runs_each_task_once(
    workspace: Path, small_disk: Path
) -> None:
    ballast = small_disk / "ballast"
    _fill(ballast)
    job = _job(workspace, "fault-full", "hello", 2)
    submit = ("submit", str(job), "--site", str(_site(workspace, small_disk / "runs")))
    code, out, err = _done(workspace, *submit)
    assert code != 0, out
    error = err.strip().splitlines()
    assert len([line for line in error if line.startswith("error:")]) == 1, err
    assert str(small_disk / "runs") in err and "No space left on device" in err, err
    assert "run the same `fcgtainer submit` again" in err, err
    run = Journal().runs()[0]
    assert not _queued(run.id), _queued(run.id)
    ballast.unlink()
    code, out, err = _done(workspace, *submit)
    assert code == 0, err
    assert run.id[:8] in out, out  # the same run, resumed
    assert _wait_terminal(Journal(), run.id) == [State.SUCCEEDED] * 2
    assert [attempts(run.run_dir, i) for i in range(2)] == [1, 1]


def test_task_filling_the_disk_fails_saying_so_and_resubmit_reruns_it(
    workspace: Path, small_disk: Path
) -> None:
    _fill(small_disk / "ballast", leave=3 << 19)  # room for the run directory, not for 2 MiB
    job = _job(workspace, "fault-fill", "fill", 1)
    journal, run = _submitted(workspace, job, _site(workspace, small_disk / "runs"), "mib=2")
    assert _wait_terminal(journal, run.id) == [State.FAILED]
    code, out, err = _done(workspace, "status", run.id)
    assert code == 0, err
    assert "No space left on device" in out and "fcgtainer resubmit" in out, out
    code, out, err = _done(workspace, "logs", run.id)
    assert code == 0 and "No space left on device" in out, out + err
    (small_disk / "ballast").unlink()
    code, out, err = _done(workspace, "resubmit", run.id)
    assert code == 0 and "resubmitted 1 task(s)" in out, out + err
    assert _wait_terminal(journal, run.id) == [State.SUCCEEDED]
    assert attempts(run.run_dir, 0) == 2
