"""Nothing run twice, nothing left 'unknown': one submitter adopts a run, one supervisor per
run directory, cancel stops everything, an interrupted submission is resumed or LOST."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from rich.console import Console

from fcgtainer.backends.local import LocalBackend, pid_alive, supervisor_pids
from fcgtainer.cli import render
from fcgtainer.plan.tasks import Plan
from fcgtainer.runs import control, monitor
from fcgtainer.runs import submit as runs
from fcgtainer.runs.journal import Journal
from fcgtainer.states import State

pytestmark = pytest.mark.unit
HELLO = str(Path(__file__).resolve().parents[2] / "jobs" / "hello")


class Crashing(LocalBackend):
    """A backend that dies where a killed CLI would: after the journal, before the ids."""

    def __init__(self, plan: Plan, start: bool) -> None:
        super().__init__(plan.site)
        self.start = start

    def submit(self, plan: Plan, indices: Sequence[int] | None = None) -> dict[int, str]:
        if self.start:
            super().submit(plan, indices)
        raise RuntimeError("killed")

    def find(self, plan: Plan) -> dict[int, str]:
        return {}


def _wait(predicate: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def _left_submitting(local_site: Path, sets: list[str], *, start: bool) -> Plan:
    plan = runs.plan_run(HELLO, str(local_site), sets)
    with pytest.raises(RuntimeError):
        runs.submit(plan, Journal(), Crashing(plan, start))
    assert Journal().run(plan.run_id).phase == "submitting"
    return plan


def _terminal(journal: Journal, run_id: str) -> bool:
    return all(t.status.state.terminal for t in monitor.refresh(journal, journal.run(run_id)))


def test_three_identical_submits_adopt_the_run_once(local_site: Path, tmp_path: Path) -> None:
    plan = _left_submitting(local_site, ["sleep=1"], start=False)
    argv = [sys.executable, "-m", "fcgtainer", "submit", HELLO, "--site", str(local_site)]
    argv += ["--set", "sleep=1"]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)
    ]
    results = [(p.wait(timeout=120), p.communicate()) for p in procs]
    adopted = [r for r in results if r[0] == 0 and plan.run_id[:8] in r[1][0].decode()]
    assert len(adopted) >= 1
    for code, (_, err) in results:
        assert code == 0 or "another `fcgtainer submit`" in err.decode(), err.decode()
    journal = Journal()
    for record in journal.runs():
        _wait(lambda r=record: _terminal(journal, r.id))  # type: ignore[misc]
        _wait(lambda r=record: not any(pid_alive(p) for p in supervisor_pids(r.run_dir)))
        for i in range(4):
            lines = (record.run_dir / "tasks" / str(i) / "attempts").read_text().splitlines()
            assert len(lines) == 1, f"{record.run_dir} task {i} ran {len(lines)} times"


def test_second_supervisor_on_a_run_dir_runs_nothing_twice(local_site: Path) -> None:
    journal = Journal()
    plan = runs.plan_run(HELLO, str(local_site), ["sleep=1"])
    runs.submit(plan, journal)
    LocalBackend(plan.site).submit(plan)  # a duplicate supervisor, as a second adopter would
    _wait(lambda: _terminal(journal, plan.run_id))
    _wait(lambda: not any(pid_alive(p) for p in supervisor_pids(plan.run_dir)))
    for i in range(4):
        assert len((plan.task_dir(i) / "attempts").read_text().splitlines()) == 1


def test_cli_killed_after_supervisor_started_is_adopted_and_cancellable(
    local_site: Path,
) -> None:
    plan = _left_submitting(local_site, ["sleep=60"], start=True)
    journal = Journal()
    _wait(lambda: all((plan.task_dir(i) / "pid").exists() for i in (0, 1)))
    tasks = monitor.refresh(journal, journal.run(plan.run_id))
    assert all(t.backend_id for t in tasks)
    assert {t.status.state for t in tasks} <= {State.RUNNING, State.PENDING}
    pids = [int((plan.task_dir(i) / "pid").read_text()) for i in (0, 1)]
    sups = supervisor_pids(plan.run_dir)
    assert control.cancel(journal, journal.run(plan.run_id), None) == 4
    _wait(lambda: not any(pid_alive(p) for p in [*pids, *sups]), timeout=30)
    states = {t.status.state for t in monitor.refresh(journal, journal.run(plan.run_id))}
    assert states == {State.CANCELLED}


def test_interrupted_submission_says_resume_then_lost_and_resumes(
    local_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = _left_submitting(local_site, [], start=False)
    journal = Journal()
    tasks = monitor.refresh(journal, journal.run(plan.run_id))
    assert {t.status.state for t in tasks} == {State.UNKNOWN}
    assert "re-run the same `fcgtainer submit`" in tasks[0].status.reason
    monkeypatch.setenv("FCGTAINER_LOST_GRACE", "0")
    tasks = monitor.refresh(journal, journal.run(plan.run_id))
    assert {t.status.state for t in tasks} == {State.LOST}
    assert "re-run the same `fcgtainer submit`" in tasks[0].status.reason
    # `logs --follow` on it ends
    with open(os.devnull, "w") as sink:
        render.show_log(Console(file=sink), journal, journal.run(plan.run_id), 0, follow=True)
    monkeypatch.delenv("FCGTAINER_LOST_GRACE")
    again = runs.submit(runs.plan_run(HELLO, str(local_site), []), journal)
    assert again.plan.run_id == plan.run_id
    _wait(lambda: _terminal(journal, plan.run_id))
    assert {t.status.state for t in journal.tasks(plan.run_id)} == {State.SUCCEEDED}


def test_cancel_of_a_never_submitted_run_leaves_nothing_unknown(local_site: Path) -> None:
    plan = _left_submitting(local_site, [], start=False)
    journal = Journal()
    assert control.cancel(journal, journal.run(plan.run_id), None) == 4
    tasks = monitor.refresh(journal, journal.run(plan.run_id))
    assert {t.status.state for t in tasks} == {State.CANCELLED}


def test_disk_full_while_writing_the_run_dir_is_one_error_and_resumable(
    local_site: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    import errno

    from fcgtainer.runs import rundir

    real = rundir.write_private

    def full(path: Path, data: bytes, *args: object, **kwargs: object) -> None:
        if path.suffix == ".argv":  # the task table's argv chunk
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rundir, "write_private", full)
    code, _, err = run_cli("submit", HELLO, "--site", str(local_site))
    assert code == 1 and "No space left on device" in err and "Traceback" not in err
    assert "run the same `fcgtainer submit` again" in err
    journal = Journal()
    run = journal.runs()[0]
    tasks = monitor.refresh(journal, run)
    assert "re-run the same `fcgtainer submit`" in tasks[0].status.reason
    monkeypatch.setattr(rundir, "write_private", real)
    code, out, err = run_cli("submit", HELLO, "--site", str(local_site))
    assert code == 0 and run.id[:8] in out, err
    _wait(lambda: _terminal(journal, run.id))
    assert {t.status.state for t in journal.tasks(run.id)} == {State.SUCCEEDED}
