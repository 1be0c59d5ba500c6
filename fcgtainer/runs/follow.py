"""Following a run as it goes: the polling loops behind ``status --watch`` and ``logs -f``.

Each is a generator: the CLI renders what it yields and decides nothing about timing.
Polls are polite: one batched scheduler call per refresh (:func:`monitor.refresh`), with
backoff while nothing finishes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from fcgtainer import tasktable
from fcgtainer.errors import NotFoundError
from fcgtainer.runs import monitor
from fcgtainer.runs.journal import Journal, RunRecord, TaskRecord
from fcgtainer.runs.rundir import log_path

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0
LOG_POLL_S = 1.0


def watch(
    journal: Journal, run: RunRecord, *, sleep: Callable[[float], None] = time.sleep
) -> Iterator[list[TaskRecord]]:
    """Yield the run's tasks after each refresh, until every task has finished."""
    delay = FIRST_DELAY_S
    while True:
        tasks = monitor.refresh(journal, run)
        yield tasks
        if all(t.status.state.terminal for t in tasks):
            return
        sleep(delay)
        delay = min(MAX_DELAY_S, delay * 1.5)


def log_chunks(
    journal: Journal,
    run: RunRecord,
    index: int,
    *,
    follow: bool,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[bytes]:
    """Yield a task's log as it grows; with ``follow``, until the task has finished."""
    path = log_path(run.run_dir, index)
    if not path.parent.is_dir() and tasktable.row(run.run_dir, index) is None:
        raise NotFoundError(f"run {run.id[:8]} has no task {index}", "see fcgtainer status")
    offset = 0
    while True:
        if path.exists():
            with path.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            offset += len(chunk)
            if chunk:
                yield chunk
        if not follow:
            return
        tasks = monitor.refresh(journal, run)
        if tasks[index].status.state.terminal:
            follow = False  # one last read: what the task wrote before it ended
            continue
        sleep(LOG_POLL_S)
