"""The local backend: detached, bounded, keeps logs and exit codes, cancels by process group."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fcgtainer.backends.local import pid_alive, read_pid
from fcgtainer.runs import control, monitor
from fcgtainer.runs import submit as runs
from fcgtainer.runs.journal import Journal
from fcgtainer.runs.rundir import log_path, read_marker
from fcgtainer.states import State, TaskStatus

pytestmark = pytest.mark.unit
HELLO = str(Path(__file__).resolve().parents[2] / "jobs" / "hello")


def wait_for(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    """Poll until ``predicate`` holds; a generous bound, not a performance threshold."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def finished(journal: Journal, run_id: str) -> bool:
    tasks = monitor.refresh(journal, journal.run(run_id))
    return all(t.status.state.terminal for t in tasks)


def test_300_tasks_logs_and_exit_codes(local_site: Path) -> None:
    journal = Journal()
    # the shipped job has 4 tasks: widen its matrix in a copy for 300
    job_dir = local_site.parent.parent / "jobs" / "wide"
    job_dir.mkdir(parents=True)
    (job_dir / "job.yaml").write_text(
        (Path(HELLO) / "job.yaml").read_text().replace("range: [0, 4]", "range: [0, 300]")
    )
    os.symlink(Path(HELLO) / "hello", job_dir / "hello")
    plan = runs.plan_run(str(job_dir), str(local_site), ["fail_task=7"])
    done = runs.submit(plan, journal)
    assert len(done.ids) == 300
    wait_for(lambda: finished(journal, plan.run_id))
    tasks = journal.tasks(plan.run_id)
    states = [t.status.state for t in tasks]
    assert states.count(State.SUCCEEDED) == 299
    assert tasks[7].status.state is State.FAILED and tasks[7].status.exit_code == 3
    assert read_marker(plan.run_dir, 7) == 3
    assert "failing as asked" in log_path(plan.run_dir, 7).read_text()
    for i in (0, 150, 299):
        assert read_marker(plan.run_dir, i) == 0
        assert f"hello from task {i}" in (plan.out_dir(i) / "hello.txt").read_text()


def test_cancel_stops_every_task_process(local_site: Path) -> None:
    journal = Journal()
    plan = runs.plan_run(HELLO, str(local_site), ["sleep=60"])
    runs.submit(plan, journal)
    pid_files = [plan.task_dir(i) / "pid" for i in (0, 1)]
    wait_for(lambda: all(p.exists() for p in pid_files))
    pids = [read_pid(p) for p in pid_files]
    supervisor = read_pid(plan.run_dir / "local.pid")
    assert supervisor and all(pids)
    wait_for(lambda: all(pid_alive(p) for p in pids if p))
    n = control.cancel(journal, journal.run(plan.run_id), None)
    assert n == 4
    wait_for(lambda: not any(pid_alive(p) for p in [*pids, supervisor] if p), timeout=30)
    tasks = monitor.refresh(journal, journal.run(plan.run_id))
    assert {t.status.state for t in tasks} == {State.CANCELLED}
    assert journal.run(plan.run_id).phase == "cancelled"


def test_resubmit_failed_reruns_only_it(local_site: Path) -> None:
    journal = Journal()
    plan = runs.plan_run(HELLO, str(local_site), ["fail_task=2"])
    runs.submit(plan, journal)
    wait_for(lambda: finished(journal, plan.run_id))
    before = {i: (plan.task_dir(i) / "attempts").read_text() for i in range(4)}
    assert control.resubmit(journal, journal.run(plan.run_id)) == 1
    wait_for(lambda: finished(journal, plan.run_id))
    after = {i: (plan.task_dir(i) / "attempts").read_text() for i in range(4)}
    assert [i for i in range(4) if before[i] != after[i]] == [2]


def test_lost_without_marker(local_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal()
    plan = runs.plan_run(HELLO, str(local_site), [])
    runs.submit(plan, journal)
    wait_for(lambda: finished(journal, plan.run_id))
    supervisor = read_pid(plan.run_dir / "local.pid")
    wait_for(lambda: supervisor is not None and not pid_alive(supervisor))
    # a task whose marker vanished and that no process runs is never SUCCEEDED
    monkeypatch.setenv("FCGTAINER_LOST_GRACE", "0")
    run = journal.run(plan.run_id)
    (plan.task_dir(1) / "exit_code").unlink()
    journal.update_states(run.id, {1: TaskStatus(State.PENDING)})
    monitor.refresh(journal, run)
    tasks = monitor.refresh(journal, run)
    assert tasks[1].status.state is State.LOST
