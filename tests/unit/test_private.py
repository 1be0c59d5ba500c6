"""Run directories and the state directory are private to the submitter whatever the umask."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fcgtainer.runs import monitor
from fcgtainer.runs import submit as runs
from fcgtainer.runs.journal import Journal

pytestmark = pytest.mark.unit
HELLO = str(Path(__file__).resolve().parents[2] / "jobs" / "hello")


@pytest.fixture(params=[0o000, 0o002, 0o022])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def _finished(journal: Journal, run_id: str) -> bool:
    return all(t.status.state.terminal for t in monitor.refresh(journal, journal.run(run_id)))


def _modes(root: Path) -> dict[Path, int]:
    found = {root: stat.S_IMODE(root.lstat().st_mode)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            found[path] = stat.S_IMODE(path.lstat().st_mode)
    return found


def _wait(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def test_run_dir_and_journal_private_whatever_the_umask(
    umask: int, local_site: Path, isolated_state: Path
) -> None:
    journal = Journal()
    plan = runs.plan_run(HELLO, str(local_site), [])
    runs.submit(plan, journal)
    _wait(lambda: _finished(journal, plan.run_id))
    _wait(lambda: not (plan.run_dir / "local.pid").exists() or _supervisor_gone(plan.run_dir))
    assert (plan.task_dir(0) / "exit_code").is_file()
    for root in (plan.run_dir, isolated_state):
        for path, mode in _modes(root).items():
            if path.is_symlink():
                continue
            assert mode & 0o077 == 0, f"{path} is {oct(mode)} under umask {oct(umask)}"
    assert stat.S_IMODE(plan.site.runs_path.stat().st_mode) & 0o077 == 0


def _supervisor_gone(run_dir: Path) -> bool:
    from fcgtainer.backends.local import pid_alive, read_pid

    pid = read_pid(run_dir / "local.pid")
    return pid is None or not pid_alive(pid)


def test_share_group_makes_run_group_readable_never_writable(
    write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    site = write(
        "sites/shared.yaml",
        f"""\
        scheduler: local
        runtime: native
        share_group: true
        runs_dir: {tmp_path}/runs
        """,
    )
    previous = os.umask(0)
    try:
        journal = Journal()
        plan = runs.plan_run(HELLO, str(site), [])
        runs.submit(plan, journal)
        _wait(lambda: _finished(journal, plan.run_id))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(plan.run_dir.stat().st_mode) == 0o750
    assert stat.S_IMODE((plan.task_dir(0) / "argv").stat().st_mode) == 0o640
    for path, mode in _modes(plan.run_dir).items():
        assert mode & 0o022 == 0, f"{path} is {oct(mode)}"
