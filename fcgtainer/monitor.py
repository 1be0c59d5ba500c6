"""Status: one batched scheduler call per poll, merged with the wrapper's markers.

A task is SUCCEEDED only when its exit-code marker says 0, never because the scheduler
forgot it. A task the scheduler no longer knows and that left no marker becomes LOST after
a grace period (the marker may be in flight on a shared filesystem).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping

from fcgtainer.backends import get_backend
from fcgtainer.journal import Journal, RunRecord, TaskRecord
from fcgtainer.rundir import read_marker
from fcgtainer.site import Site
from fcgtainer.states import EXIT_REQUEUE, State, TaskStatus, from_marker

LOST_GRACE_S = 120.0
ACTIVE = frozenset({State.PENDING, State.RUNNING, State.REQUEUED, State.HELD})


def lost_grace() -> float:
    """Seconds a task may be unknown to the scheduler without a marker before it is LOST."""
    return float(os.environ.get("FCGTAINER_LOST_GRACE", LOST_GRACE_S))


def merge(
    scheduler: TaskStatus | None, marker: int | None, *, cancelled: bool, overdue: bool
) -> TaskStatus:
    """One task's state from what the scheduler says and what the wrapper wrote."""
    if scheduler is not None and scheduler.state is State.CANCELLED:
        if marker == 0:
            return from_marker(0)
        return scheduler
    if marker is not None:
        if scheduler is not None and scheduler.state in ACTIVE and marker != 0:
            # an earlier attempt failed or checkpointed; the scheduler runs it again
            if scheduler.state is State.PENDING:
                return TaskStatus(State.REQUEUED, marker, f"requeued after exit code {marker}")
            return scheduler
        if marker == EXIT_REQUEUE and not overdue:
            return TaskStatus(State.REQUEUED, marker, "checkpointed, waiting to be requeued")
        return from_marker(marker)
    if scheduler is not None and scheduler.state in ACTIVE:
        return scheduler
    if cancelled:
        return TaskStatus(State.CANCELLED, reason="cancelled")
    if scheduler is not None and scheduler.state is State.FAILED:
        return scheduler
    if overdue:
        return TaskStatus(
            State.LOST, reason="the scheduler no longer knows it and it left no exit-code marker"
        )
    return TaskStatus(State.UNKNOWN, reason="waiting for the exit-code marker")


def site_of(run: RunRecord) -> Site:
    """The site exactly as it was loaded when the run was submitted."""
    data = dict(run.manifest["site"])
    return Site.model_validate(data)


def refresh(journal: Journal, run: RunRecord, *, now: float | None = None) -> list[TaskRecord]:
    """Ask the scheduler once about every unfinished task of ``run`` and store the answer."""
    return refresh_many(journal, [run], now=now)[run.id]


def refresh_many(
    journal: Journal, runs: list[RunRecord], *, now: float | None = None
) -> dict[str, list[TaskRecord]]:
    """Refresh several runs with ONE scheduler call per site, whatever the number of tasks."""
    tasks = {run.id: journal.tasks(run.id) for run in runs}
    by_site: dict[str, list[RunRecord]] = {}
    for run in runs:
        if any(not t.status.state.terminal and t.backend_id for t in tasks[run.id]):
            by_site.setdefault(json.dumps(run.manifest["site"], sort_keys=True), []).append(run)
    moment = time.time() if now is None else now
    for site_runs in by_site.values():
        backend = get_backend(site_of(site_runs[0]))
        ids = [
            t.backend_id
            for run in site_runs
            for t in tasks[run.id]
            if not t.status.state.terminal and t.backend_id
        ]
        answers = backend.status(ids)
        for run in site_runs:
            updates = _merge_run(run, tasks[run.id], answers, moment)
            if updates:
                journal.update_states(run.id, updates)
                tasks[run.id] = journal.tasks(run.id)
    return tasks


def _merge_run(
    run: RunRecord, tasks: list[TaskRecord], answers: Mapping[str, TaskStatus], moment: float
) -> dict[int, TaskStatus]:
    updates: dict[int, TaskStatus] = {}
    for task in tasks:
        if task.status.state.terminal or not task.backend_id:
            continue
        seen = answers.get(task.backend_id)
        overdue = (
            (seen is None or seen.state.terminal)
            and task.status.state is State.UNKNOWN
            and moment - task.updated > lost_grace()
        )
        status = merge(
            seen,
            read_marker(run.run_dir, task.index),
            cancelled=run.phase == "cancelled",
            overdue=overdue,
        )
        if status != task.status:
            updates[task.index] = status
    return updates


def counts(tasks: list[TaskRecord]) -> Mapping[State, int]:
    """How many tasks are in each state."""
    out: dict[State, int] = {}
    for task in tasks:
        out[task.status.state] = out.get(task.status.state, 0) + 1
    return out
