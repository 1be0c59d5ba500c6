"""The local backend: a detached supervisor runs a run's tasks in a bounded pool.

The supervisor (``local_runner``) survives the CLI exiting; each task is the job wrapper in
its own process group, so ``cancel`` stops every process a task started.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from fcgtainer import tasktable
from fcgtainer.backends.base import Backend
from fcgtainer.plan.tasks import Plan
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


def supervisor_pids(run_dir: Path) -> list[int]:
    """Every supervisor a run directory has had that may still live (``supervisors/``)."""
    pids = {read_pid(run_dir / "local.pid")}
    with contextlib.suppress(FileNotFoundError):
        pids.update(int(p.name) for p in (run_dir / "supervisors").iterdir() if p.name.isdigit())
    return sorted(p for p in pids if p is not None)


def supervised(run_dir: Path) -> bool:
    """True while a supervisor of this run directory is alive."""
    return any(pid_alive(p) for p in supervisor_pids(run_dir))


class LocalBackend(Backend):
    """Runs tasks on this machine: natively or through Apptainer, as the plan says."""

    name = "local"

    def pool_size(self, plan: Plan) -> int:
        """How many tasks run at once: the site's limit, else cores / cpus per task."""
        if self.site.local.max_parallel:
            return self.site.local.max_parallel
        return max(1, (os.cpu_count() or 1) // max(1, plan.resources.cpus))

    def supervisor_argv(self, plan: Plan, chosen: Sequence[int]) -> list[str]:
        """The background supervisor that runs the chosen tasks, a pool at a time."""
        module = "fcgtainer.backends.local_runner"
        pool = str(self.pool_size(plan))
        return [sys.executable, "-m", module, str(plan.run_dir), pool, *map(str, chosen)]

    def describe(self, plan: Plan) -> str:
        """The supervisor ``submit`` would start, and what it runs for each task."""
        argv = self.supervisor_argv(plan, [t.index for t in plan.tasks])
        wrapper = ["bash", str(plan.run_dir / "wrapper.sh"), str(plan.run_dir), "INDEX"]
        return f"{shlex.join(argv)} &\n# in the background, for each task: {shlex.join(wrapper)}\n"

    def submit(
        self,
        plan: Plan,
        indices: Sequence[int] | None = None,
        *,
        queued: Mapping[int, str] | None = None,  # not needed: no limit leaves tasks waiting
    ) -> dict[int, str]:
        """Start the supervisor for the run and return at once."""
        chosen = list(indices) if indices is not None else [t.index for t in plan.tasks]
        fd = os.open(plan.run_dir / "local.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        log = os.fdopen(fd, "ab")
        try:
            supervisor = subprocess.Popen(
                self.supervisor_argv(plan, chosen),
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
        if supervisor_pids(plan.run_dir):
            return {t.index: _id(plan.run_dir, t.index) for t in plan.tasks}
        return {}

    def status(self, ids: Sequence[str]) -> dict[str, TaskStatus]:
        """Read the supervisor's pid files; one directory scan, no scheduler."""
        out: dict[str, TaskStatus] = {}
        supervisors: dict[Path, bool] = {}
        for task_id in ids:
            run_dir, index = _split(task_id)
            if run_dir not in supervisors:
                supervisors[run_dir] = supervised(run_dir)
            tdir = run_dir / "tasks" / str(index)
            if (tdir / "cancelled").exists() or (run_dir / "cancelled").exists():
                out[task_id] = TaskStatus(State.CANCELLED, reason="cancelled")
                continue
            pid = read_pid(tdir / "pid")
            if pid is not None and pid_alive(pid):
                out[task_id] = TaskStatus(State.RUNNING)
            elif supervisors[run_dir]:
                marked, started = (tdir / "exit_code").exists(), (tdir / "pid").exists()
                if marked and not started:
                    continue  # the supervisor is done with it: its marker says how it ended
                out[task_id] = TaskStatus(State.REQUEUED if marked else State.PENDING)
        return out

    def cancel(self, ids: Sequence[str]) -> None:
        """Stop the tasks' process groups (and the supervisor when the whole run goes)."""
        by_run: dict[Path, list[int]] = {}
        for task_id in ids:
            run_dir, index = _split(task_id)
            by_run.setdefault(run_dir, []).append(index)
        for run_dir, indices in by_run.items():
            every = set(tasktable.rows(run_dir))
            whole = set(indices) >= every
            groups = []
            if whole:
                (run_dir / "cancelled").touch()
                for sup in supervisor_pids(run_dir):
                    if pid_alive(sup):
                        groups.append(sup)
                        _signal_group(sup, signal.SIGTERM)
            for index in indices:
                tdir = run_dir / "tasks" / str(index)
                tdir.mkdir(exist_ok=True)  # a task that has not started yet
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
