"""Bounded requeues (max_requeues, per task, in status) and resubmit by choice."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fcgtainer.runs import control, monitor
from fcgtainer.runs import submit as runs
from fcgtainer.runs.journal import Journal
from fcgtainer.runs.rundir import attempts, requeues
from fcgtainer.states import State, TaskStatus

pytestmark = pytest.mark.unit
Write = Callable[[str, str], Path]
RunCli = Callable[..., tuple[int, str, str]]


def _wait(predicate: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def _terminal(journal: Journal, run_id: str) -> bool:
    return all(t.status.state.terminal for t in monitor.refresh(journal, journal.run(run_id)))


def test_always_checkpointing_task_is_requeued_max_requeues_times(
    write: Write, local_site: Path, run_cli: RunCli
) -> None:
    job = write("jobs/ck/job.yaml", "command: [sh, -c, 'exit 85']\nmax_requeues: 3\n")
    journal = Journal()
    plan = runs.plan_run(str(job), str(local_site), [])
    runs.submit(plan, journal)
    _wait(lambda: _terminal(journal, plan.run_id))
    time.sleep(1.0)  # a runaway supervisor would keep restarting it
    assert attempts(plan.run_dir, 0) == 4 and requeues(plan.run_dir, 0) == 3
    task = journal.tasks(plan.run_id)[0]
    assert task.status.state is State.FAILED
    assert "max_requeues reached" in task.status.reason
    code, out, _ = run_cli("status", plan.run_id[:8])
    assert code == 0 and "3/3" in out


def test_resubmit_chooses_failed_cancelled_or_all(
    write: Write, local_site: Path, run_cli: RunCli
) -> None:
    job = write(
        "jobs/rs/job.yaml",
        "command: [sh, -c, 'test \"$1\" != 1', x, '{param.n}']\nmatrix: {n: [0, 1, 2]}\n",
    )
    journal = Journal()
    plan = runs.plan_run(str(job), str(local_site), [])
    runs.submit(plan, journal)
    _wait(lambda: _terminal(journal, plan.run_id))
    # task 2 cancelled (as a cancel of that task would leave it), task 1 failed
    journal.update_states(plan.run_id, {2: TaskStatus(State.CANCELLED, reason="cancelled")})
    (plan.task_dir(2) / "exit_code").unlink()
    (plan.task_dir(2) / "cancelled").touch()

    def ran() -> list[int]:
        return [attempts(plan.run_dir, i) for i in range(3)]

    code, out, _ = run_cli("resubmit", plan.run_id[:8])
    assert code == 0 and "resubmitted 1 task(s)" in out
    _wait(lambda: _terminal(journal, plan.run_id) and ran() == [1, 2, 1])
    assert journal.tasks(plan.run_id)[2].status.state is State.CANCELLED
    code, out, _ = run_cli("resubmit", plan.run_id[:8], "--cancelled")
    assert code == 0 and "resubmitted 1 task(s)" in out
    _wait(lambda: _terminal(journal, plan.run_id) and ran() == [1, 2, 2])
    assert journal.tasks(plan.run_id)[2].status.state is State.SUCCEEDED
    code, out, _ = run_cli("resubmit", plan.run_id[:8], "--all")
    assert code == 0 and "resubmitted 1 task(s)" in out  # only task 1 is not succeeded
    _wait(lambda: _terminal(journal, plan.run_id) and ran() == [1, 3, 2])
    assert control.resubmit(journal, journal.run(plan.run_id), states=control.CANCELLED) == 0


def test_walltime_is_enforced_on_the_local_backend(write: Write, local_site: Path) -> None:
    job = write(
        "jobs/slow/job.yaml",
        "command: [sleep, '30']\nresources: {walltime: 2}\n",
    )
    journal = Journal()
    plan = runs.plan_run(str(job), str(local_site), [])
    start = time.monotonic()
    runs.submit(plan, journal)
    _wait(lambda: _terminal(journal, plan.run_id), timeout=60)
    assert time.monotonic() - start < 20
    task = journal.tasks(plan.run_id)[0]
    assert task.status.state is State.FAILED
    assert task.status.reason == "walltime of 2 s exceeded"
    assert "walltime of 2 s reached" in (plan.task_dir(0) / "task.log").read_text()
