"""The local backend's supervisor: ``python -m fcgtainer.backends.local_runner RUN_DIR N I...``.

Runs the listed tasks through the job wrapper, at most N at a time, each in its own process
group; retries what the job allows; on SIGTERM stops every task group and exits. When every
task has finished, it writes the run's report (``report/index.html``).

One supervisor per run directory: it holds ``RUN_DIR/local.lock`` for its whole life (a
second one, e.g. from ``resubmit``, waits for it) and is listed in ``RUN_DIR/supervisors/``
while it lives. Each task records its process group in ``tasks/<i>/pid`` itself, before the
wrapper starts, so ``cancel`` can always find it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fcgtainer import tasktable
from fcgtainer.states import EXIT_REQUEUE, NOT_RETRIED

_stopping = False
KILL_GRACE_S = 30.0  # after SIGTERM at the walltime, what is left of the task is killed

# the task's shell writes its own pid (its process group) before the wrapper starts
RECORD_PID = 'printf %s "$$" > "$1.$$" && mv -f "$1.$$" "$1" && shift && exec bash "$@"'


def _stop(signum: int, frame: object) -> None:
    global _stopping
    _stopping = True


def _start(run_dir: Path, index: int, attempt: int) -> subprocess.Popen[bytes]:
    tdir = run_dir / "tasks" / str(index)
    tdir.mkdir(exist_ok=True)  # the wrapper fills it from the task table
    (tdir / "walltime_exceeded").unlink(missing_ok=True)  # each attempt has the whole walltime
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "FCGTAINER_ATTEMPT": str(attempt)}
    return subprocess.Popen(
        [
            "bash",
            "-c",
            RECORD_PID,
            "fcgtainer-task",
            str(tdir / "pid"),
            str(run_dir / "wrapper.sh"),
            str(run_dir),
            str(index),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )


def _exit_code(run_dir: Path, index: int, fallback: int) -> int:
    try:
        return int((run_dir / "tasks" / str(index) / "exit_code").read_text().strip())
    except (FileNotFoundError, ValueError):
        return fallback


def _number(path: Path, default: int) -> int:
    try:
        return int(path.read_text().strip() or default)
    except (FileNotFoundError, ValueError):
        return default


def _finished(run_dir: Path, index: int) -> bool:
    """A task that already has a final marker (an earlier supervisor ran it) is not rerun."""
    code = _exit_code(run_dir, index, -1)
    return (run_dir / "tasks" / str(index) / "exit_code").exists() and code != EXIT_REQUEUE


def _register(run_dir: Path) -> Path:
    sup_dir = run_dir / "supervisors"
    sup_dir.mkdir(exist_ok=True)
    me = sup_dir / str(os.getpid())
    me.write_text(str(os.getpid()))
    tmp = run_dir / f".local.pid.{os.getpid()}"
    tmp.write_text(str(os.getpid()))
    os.replace(tmp, run_dir / "local.pid")
    return me


def supervise(run_dir: Path, parallel: int, indices: list[int]) -> int:
    """Run ``indices`` to completion; returns 0 (task outcomes live in their markers)."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # the run directory's own mode says who may read what the tasks write (0700 or 0750)
    os.umask(0o027 if run_dir.stat().st_mode & 0o050 else 0o077)
    me = _register(run_dir)
    lock = os.open(run_dir / "local.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held for life: one supervisor per run directory
        fresh = [i for i in indices if not _finished(run_dir, i)]
        _loop(run_dir, parallel, fresh)
        if not _stopping:  # the run's report, as DAGMan's FINAL node writes it on HTCondor
            _write_report(run_dir)
    finally:
        me.unlink(missing_ok=True)
        os.close(lock)
    return 0


def _write_report(run_dir: Path) -> None:
    """``report/index.html`` from the run directory; a failure is only logged."""
    argv = [sys.executable, "-m", "fcgtainer.runs.report", str(run_dir)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode:
        print(f"report not written: {done.stderr.strip()[-500:]}", file=sys.stderr, flush=True)


def _upstream(run_dir: Path, index: int, table: dict[int, tasktable.Row]) -> set[int]:
    try:
        text = (run_dir / "tasks" / str(index) / "upstream").read_text()
    except FileNotFoundError:
        return set(table[index].upstream) if index in table else set()
    return {int(w) for w in text.split() if w.isdigit()}


def _bound(run_dir: Path, index: int, name: str, table: dict[int, tasktable.Row]) -> int:
    """A task's ``retries`` or ``walltime``: its own file once it started, else the table's."""
    path = run_dir / "tasks" / str(index) / name
    if path.exists() or index not in table:
        return _number(path, 0)
    return int(getattr(table[index], name))


def _next_ready(
    queue: list[tuple[int, int]], running: Any, needs: dict[int, set[int]]
) -> int | None:
    """The first queued task whose upstream tasks (a campaign's) are all settled here."""
    waiting = {i for i, _ in queue} | set(running)
    for position, (index, _) in enumerate(queue):
        if not needs[index] & waiting:
            return position
    return None


def _loop(run_dir: Path, parallel: int, indices: list[int]) -> None:
    queue = [(i, 0) for i in indices]
    # a campaign: a task starts once every task it reads has finished (the wrapper then
    # checks their markers itself); steps thus run in dependency order
    table = tasktable.rows(run_dir)
    needs = {i: _upstream(run_dir, i, table) for i in indices}
    running: dict[int, tuple[subprocess.Popen[bytes], int]] = {}
    started: dict[int, float] = {}
    while (queue or running) and not _stopping:
        while queue and len(running) < parallel and not _stopping:
            position = _next_ready(queue, running, needs)
            if position is None:
                break
            index, previous = queue.pop(position)
            if (run_dir / "tasks" / str(index) / "cancelled").exists():
                continue
            running[index] = (_start(run_dir, index, previous), previous + 1)
            started[index] = time.monotonic()
        time.sleep(0.02)
        for index, (proc, attempt) in list(running.items()):
            rc = proc.poll()
            if rc is None:
                limit = _bound(run_dir, index, "walltime", table)
                _enforce_walltime(run_dir, index, proc, time.monotonic() - started[index], limit)
                continue
            del running[index]
            code = _exit_code(run_dir, index, rc)
            tdir = run_dir / "tasks" / str(index)
            retries = _bound(run_dir, index, "retries", table)
            if code == EXIT_REQUEUE:
                # the wrapper counted it against max_requeues and says when it is used up
                again = not (tdir / "requeue_limit").exists()
            else:
                again = code != 0 and code not in NOT_RETRIED and attempt <= retries
            if again and not _stopping:
                queue.append((index, attempt))
            else:
                (run_dir / "tasks" / str(index) / "pid").unlink(missing_ok=True)
    if _stopping:
        for proc, _ in running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(p.poll() is None for p, _ in running.values()):
            time.sleep(0.05)
        for proc, _ in running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def _enforce_walltime(
    run_dir: Path, index: int, proc: subprocess.Popen[bytes], elapsed: float, limit: int
) -> None:
    """Past its walltime a task gets SIGTERM (the wrapper forwards it: a checkpointing
    payload saves and exits 85), and SIGKILL for its whole group ``KILL_GRACE_S`` later."""
    tdir = run_dir / "tasks" / str(index)
    if limit <= 0 or elapsed < limit:
        return
    flag = tdir / "walltime_exceeded"
    if not flag.exists():
        flag.write_text(f"{limit}\n")
        with contextlib.suppress(OSError), (tdir / "task.log").open("a") as log:
            log.write(f"== fcgtainer: walltime of {limit} s reached, sending SIGTERM\n")
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
    elif elapsed >= limit + KILL_GRACE_S:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    """Entry point: RUN_DIR PARALLEL INDEX..."""
    run_dir, parallel, *indices = argv
    return supervise(Path(run_dir), int(parallel), [int(i) for i in indices])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
