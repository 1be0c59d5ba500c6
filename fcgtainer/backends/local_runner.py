"""The local backend's supervisor: ``python -m fcgtainer.backends.local_runner RUN_DIR N I...``.

Runs the listed tasks through the job wrapper, at most N at a time, each in its own process
group; retries what the job allows; on SIGTERM stops every task group and exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fcgtainer.states import EXIT_REQUEUE, NOT_RETRIED

_stopping = False


def _stop(signum: int, frame: object) -> None:
    global _stopping
    _stopping = True


def _start(run_dir: Path, index: int, attempt: int) -> subprocess.Popen[bytes]:
    tdir = run_dir / "tasks" / str(index)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "FCGTAINER_ATTEMPT": str(attempt)}
    proc = subprocess.Popen(
        ["bash", str(run_dir / "wrapper.sh"), str(run_dir), str(index)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    tmp = tdir / f".pid.{proc.pid}"
    tmp.write_text(str(proc.pid))
    os.replace(tmp, tdir / "pid")
    return proc


def _exit_code(run_dir: Path, index: int, fallback: int) -> int:
    try:
        return int((run_dir / "tasks" / str(index) / "exit_code").read_text().strip())
    except (FileNotFoundError, ValueError):
        return fallback


def supervise(run_dir: Path, parallel: int, indices: list[int]) -> int:
    """Run ``indices`` to completion; returns 0 (task outcomes live in their markers)."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    tmp = run_dir / f".local.pid.{os.getpid()}"
    tmp.write_text(str(os.getpid()))
    os.replace(tmp, run_dir / "local.pid")
    queue = [(i, 0) for i in indices]
    running: dict[int, tuple[subprocess.Popen[bytes], int]] = {}
    while (queue or running) and not _stopping:
        while queue and len(running) < parallel and not _stopping:
            index, previous = queue.pop(0)
            if (run_dir / "tasks" / str(index) / "cancelled").exists():
                continue
            running[index] = (_start(run_dir, index, previous), previous + 1)
        time.sleep(0.02)
        for index, (proc, attempt) in list(running.items()):
            rc = proc.poll()
            if rc is None:
                continue
            del running[index]
            code = _exit_code(run_dir, index, rc)
            retries = int((run_dir / "tasks" / str(index) / "retries").read_text() or 0)
            again = code == EXIT_REQUEUE or (
                code != 0 and code not in NOT_RETRIED and attempt <= retries
            )
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
    return 0


def main(argv: list[str]) -> int:
    """Entry point: RUN_DIR PARALLEL INDEX..."""
    run_dir, parallel, *indices = argv
    return supervise(Path(run_dir), int(parallel), [int(i) for i in indices])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
