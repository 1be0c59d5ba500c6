"""The local backend: a detached supervisor runs a run's tasks in a bounded pool.

The supervisor (``local_runner``) survives the CLI exiting; each task is the job wrapper in
its own process group, so ``cancel`` stops every process a task started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fcgtainer.backends.base import Backend
from fcgtainer.plan import Plan
from fcgtainer.states import State, TaskStatus


def _id(run_dir: Path, index: int) -> str:
    return f"{run_dir}#{index}"


def _split(task_id: str) -> tuple[Path, int]:
    run_dir, _, index = task_id.rpartition("#")
    return Path(run_dir), int(index)


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (and is not a zombie we could reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def read_pid(path: Path) -> int | None:
    """A pid from a pid file, or None."""
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


class LocalBackend(Backend):
    """Runs tasks on this machine: natively or through Apptainer, as the plan says."""

    name = "local"

    def pool_size(self, plan: Plan) -> int:
        """How many tasks run at once: the site's limit, else cores / cpus per task."""
        if self.site.local.max_parallel:
            return self.site.local.max_parallel
        return max(1, (os.cpu_count() or 1) // max(1, plan.resources.cpus))

    def submit(self, plan: Plan, indices: Sequence[int] | None = None) -> dict[int, str]:
        """Start the supervisor for the run and return at once."""
        chosen = list(indices) if indices is not None else [t.index for t in plan.tasks]
        log = open(plan.run_dir / "local.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            supervisor = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fcgtainer.backends.local_runner",
                    str(plan.run_dir),
                    str(self.pool_size(plan)),
                    *map(str, chosen),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            log.close()
        # written here too, so that status never sees a run without its supervisor's pid
        tmp = plan.run_dir / f".local.pid.{supervisor.pid}"
        tmp.write_text(str(supervisor.pid))
        os.replace(tmp, plan.run_dir / "local.pid")
        return {i: _id(plan.run_dir, i) for i in chosen}

    def find(self, plan: Plan) -> dict[int, str]:
        """A supervisor pid file means the run was started: adopt its tasks."""
        if (plan.run_dir / "local.pid").exists():
            return {t.index: _id(plan.run_dir, t.index) for t in plan.tasks}
        return {}

    def status(self, ids: Sequence[str]) -> dict[str, TaskStatus]:
        """Read the supervisor's pid files; one directory scan, no scheduler."""
        out: dict[str, TaskStatus] = {}
        supervisors: dict[Path, bool] = {}
        for task_id in ids:
            run_dir, index = _split(task_id)
            if run_dir not in supervisors:
                pid = read_pid(run_dir / "local.pid")
                supervisors[run_dir] = pid is not None and pid_alive(pid)
            tdir = run_dir / "tasks" / str(index)
            if (tdir / "cancelled").exists() or (run_dir / "cancelled").exists():
                out[task_id] = TaskStatus(State.CANCELLED, reason="cancelled")
                continue
            pid = read_pid(tdir / "pid")
            if pid is not None and pid_alive(pid):
                out[task_id] = TaskStatus(State.RUNNING)
            elif supervisors[run_dir]:
                queued = (tdir / "exit_code").exists() and (tdir / "pid").exists()
                out[task_id] = TaskStatus(State.REQUEUED if queued else State.PENDING)
        return out

    def cancel(self, ids: Sequence[str]) -> None:
        """Stop the tasks' process groups (and the supervisor when the whole run goes)."""
        by_run: dict[Path, list[int]] = {}
        for task_id in ids:
            run_dir, index = _split(task_id)
            by_run.setdefault(run_dir, []).append(index)
        for run_dir, indices in by_run.items():
            every = {int(p.name) for p in (run_dir / "tasks").iterdir() if p.name.isdigit()}
            whole = set(indices) >= every
            if whole:
                (run_dir / "cancelled").touch()
                sup = read_pid(run_dir / "local.pid")
                if sup is not None and pid_alive(sup):
                    _signal_group(sup, signal.SIGTERM)
            groups = []
            for index in indices:
                tdir = run_dir / "tasks" / str(index)
                (tdir / "cancelled").touch()
                pid = read_pid(tdir / "pid")
                if pid is not None:
                    groups.append(pid)
                    _signal_group(pid, signal.SIGTERM)
            _reap(groups, grace=10.0)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap(groups: list[int], grace: float) -> None:
    """Wait for process groups to end; SIGKILL what is left after ``grace`` seconds."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_group_alive(g) for g in groups):
        time.sleep(0.05)
    for group in groups:
        if _group_alive(group):
            _signal_group(group, signal.SIGKILL)
