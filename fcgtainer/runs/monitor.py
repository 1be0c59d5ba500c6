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
from pathlib import Path

from fcgtainer import tasktable
from fcgtainer.backends import get_backend
from fcgtainer.config.site import Site
from fcgtainer.plan.tasks import Plan
from fcgtainer.runs.journal import Journal, RunRecord, TaskRecord
from fcgtainer.runs.rundir import (
    bundle_queues,
    max_requeues,
    read_markers,
    read_upstream,
    requeues,
    waits_on_upstream,
)
from fcgtainer.states import EXIT_REQUEUE, State, TaskStatus, from_marker

LOST_GRACE_S = 120.0
ACTIVE = frozenset({State.PENDING, State.RUNNING, State.REQUEUED, State.HELD})
NOT_RUN = frozenset({State.CANCELLED, State.LOST, State.UNKNOWN, State.FAILED})
UNDONE = frozenset(
    {State.FAILED, State.LOST, State.UPSTREAM_FAILED, State.UPSTREAM_WAIT, State.CANCELLED}
)


def lost_grace() -> float:
    """Seconds a task may be unknown to the scheduler without a marker before it is LOST."""
    return float(os.environ.get("FCGTAINER_LOST_GRACE", LOST_GRACE_S))


def merge(
    scheduler: TaskStatus | None,
    marker: int | None,
    *,
    cancelled: bool,
    overdue: bool,
    requeue_limit: int | None = None,
) -> TaskStatus:
    """One task's state from what the scheduler says and what the wrapper wrote.

    ``requeue_limit`` is set (to the number of requeues) when a task that checkpointed has
    used up its ``max_requeues``: it will not be requeued again, so it is FAILED.
    """
    if scheduler is not None and scheduler.state is State.CANCELLED:
        if marker == 0:
            return from_marker(0)
        if marker == EXIT_REQUEUE and not cancelled:
            # removed by the pool, not by `fcgtainer cancel` (HTCondor's MaxRuntime or
            # JobFlavour limit sends kill_sig, the payload checkpointed): resumable
            return TaskStatus(
                State.FAILED,
                marker,
                "removed by the scheduler after checkpointing (a runtime limit?): "
                "`fcgtainer resubmit` continues from the checkpoint",
            )
        return scheduler
    if marker is not None:
        if scheduler is not None and scheduler.state in ACTIVE and marker != 0:
            # an earlier attempt failed or checkpointed; the scheduler runs it again
            if scheduler.state is State.PENDING:
                return TaskStatus(State.REQUEUED, marker, f"requeued after exit code {marker}")
            return scheduler
        if marker == EXIT_REQUEUE and requeue_limit is not None:
            return TaskStatus(
                State.FAILED,
                marker,
                f"checkpointed and requeued {requeue_limit} times: max_requeues reached "
                "(resubmit to continue from the checkpoint)",
            )
        if marker == EXIT_REQUEUE and not overdue:
            return TaskStatus(State.REQUEUED, marker, "checkpointed, waiting to be requeued")
        return from_marker(marker)
    if scheduler is not None and scheduler.state in ACTIVE:
        return scheduler
    if scheduler is not None and scheduler.state is State.UNKNOWN and not cancelled:
        # known to the scheduler, not placed yet (a DAG's later step): waiting, not lost
        return TaskStatus(State.PENDING, reason=scheduler.reason)
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


RESUME_HINT = "re-run the same `fcgtainer submit` to resume it"


def recorded_plan(run: RunRecord, tasks: list[TaskRecord]) -> Plan:
    """The run as the journal recorded it: enough for a backend to find its tasks by UUID."""
    from fcgtainer.config.job import Job, TaskParams
    from fcgtainer.plan.tasks import Plan as PlanClass

    data = {k: v for k, v in run.manifest["job"].items() if k not in ("source", "job_dir")}
    job = Job.model_validate(data).model_copy(
        update={
            "source": run.manifest["job"].get("source", ""),
            "job_dir": run.manifest["job"].get("job_dir", "."),
        }
    )
    site = site_of(run)
    return PlanClass(
        run_id=run.id,
        job=job,
        site=site,
        axes={},
        tasks=tuple(TaskParams(t.index, {}) for t in tasks),
        resources=job.resources_for(site.gpus.count),
        runtime=run.manifest.get("runtime", "native"),
        image=(run.manifest.get("image") or {}).get("path"),
        run_dir=run.run_dir,
    )


def settle_unsubmitted(
    journal: Journal, run: RunRecord, tasks: list[TaskRecord], moment: float
) -> list[TaskRecord]:
    """Tasks that have no scheduler id yet: adopt them, say how to resume them, or LOST.

    A run in phase ``feeding`` has tasks SLURM had no room for: they stay as they are.
    A run is left ``submitting`` when the CLI stopped between its journal entry and the
    scheduler's answer (kill -9, a full disk, an unwritable runs_dir...). Ask the scheduler
    by the run's UUID; what it has is adopted. Otherwise the tasks say that the same
    ``submit`` resumes the run and, after the grace period, become LOST with that reason.
    """
    from fcgtainer.backends import get_backend
    from fcgtainer.errors import FcgError
    from fcgtainer.runs.submit import submitting_now

    orphans = [t for t in tasks if not t.backend_id and not t.status.state.terminal]
    if not orphans or run.phase in ("cancelled", "feeding"):
        return tasks  # feeding: they wait for room (`fcgtainer resubmit --waiting`)
    if run.phase == "submitting" and submitting_now(journal, run.plan_key):
        return tasks
    found: dict[int, str] = {}
    try:
        found = get_backend(site_of(run)).find(recorded_plan(run, tasks))
    except (FcgError, ValueError, KeyError):
        found = {}  # the scheduler cannot be asked now (or the record is old): decide by time
    adopt = {t.index: found[t.index] for t in orphans if t.index in found}
    if journal.readonly:
        return tasks
    if adopt:
        journal.set_backend_ids(run.id, adopt)
    overdue = moment - run.created > lost_grace()
    updates: dict[int, TaskStatus] = {}
    for task in orphans:
        if task.index in adopt:
            continue
        if run.phase == "submitting":
            why = "the submit command stopped before the scheduler took it"
        else:
            why = "the scheduler never took it"
        status = (
            TaskStatus(State.LOST, reason=f"{why}; {RESUME_HINT}")
            if overdue
            else TaskStatus(State.UNKNOWN, reason=f"not submitted yet: {why}? {RESUME_HINT}")
        )
        if status != task.status:
            updates[task.index] = status
    if updates:
        journal.update_states(run.id, updates)
    return journal.tasks(run.id) if (adopt or updates) else tasks


def refresh(journal: Journal, run: RunRecord, *, now: float | None = None) -> list[TaskRecord]:
    """Ask the scheduler once about every unfinished task of ``run`` and store the answer."""
    return refresh_many(journal, [run], now=now)[run.id]


def refresh_many(
    journal: Journal, runs: list[RunRecord], *, now: float | None = None
) -> dict[str, list[TaskRecord]]:
    """Refresh several runs with ONE scheduler call per site, whatever the number of tasks.

    The journal is read once per run (its record, then its tasks) and written once per run
    that changed (one statement for all its changed tasks); the tasks returned carry the
    changes without reading them back.
    """
    moment = time.time() if now is None else now
    runs = [journal.run(run.id) for run in runs]  # the phase may have changed since
    tasks = {run.id: journal.tasks(run.id) for run in runs}
    for i, run in enumerate(runs):
        settled = settle_unsubmitted(journal, run, tasks[run.id], moment)
        if settled is not tasks[run.id]:
            tasks[run.id] = settled
            runs[i] = journal.run(run.id)  # adopted tasks make the run submitted
    by_site: dict[str, list[RunRecord]] = {}
    for run in runs:
        if any(not t.status.state.terminal and t.backend_id for t in tasks[run.id]):
            by_site.setdefault(json.dumps(run.manifest["site"], sort_keys=True), []).append(run)
    for site_runs in by_site.values():
        backend = get_backend(site_of(site_runs[0]))
        ids = {  # a bundle's tasks share their job's id: asked once
            t.backend_id: None
            for run in site_runs
            for t in tasks[run.id]
            if not t.status.state.terminal and t.backend_id
        }
        answers = backend.status(list(ids))
        for run in site_runs:
            updates = _merge_run(run, tasks[run.id], answers, moment)
            if updates:
                stamp = journal.update_states(run.id, updates)
                tasks[run.id] = [
                    TaskRecord(t.run_id, t.index, t.name, t.backend_id, updates[t.index], stamp)
                    if t.index in updates
                    else t
                    for t in tasks[run.id]
                ]
    return tasks


def _merge_run(
    run: RunRecord, tasks: list[TaskRecord], answers: Mapping[str, TaskStatus], moment: float
) -> dict[int, TaskStatus]:
    updates: dict[int, TaskStatus] = {}
    states = {t.index: t.status.state for t in tasks}
    live = [t for t in tasks if not t.status.state.terminal and t.backend_id]
    markers = read_markers(run.run_dir, (t.index for t in live))
    table: dict[int, tasktable.Row] | None = None  # read once, if a dropped task needs it
    queues: dict[int, int] | None = None  # read once, if a running task may be in a bundle
    cancelled = run.phase == "cancelled"
    grace = lost_grace()
    for task in live:
        assert task.backend_id is not None
        seen = answers.get(task.backend_id)
        overdue = (
            (seen is None or seen.state.terminal)
            and task.status.state is State.UNKNOWN
            and moment - task.updated > grace
        )
        marker = markers[task.index]
        limit = None
        if marker == EXIT_REQUEUE and (seen is None or seen.state not in ACTIVE):
            done = requeues(run.run_dir, task.index)
            if done >= max_requeues(run.run_dir, task.index):
                limit = done
        status = merge(seen, marker, cancelled=cancelled, overdue=overdue, requeue_limit=limit)
        if status.state is State.FAILED and marker != EXIT_REQUEUE:
            over = run.run_dir / "tasks" / str(task.index) / "walltime_exceeded"
            if over.exists():
                limit_s = over.read_text().strip()
                status = TaskStatus(State.FAILED, marker, f"walltime of {limit_s} s exceeded")
            else:
                status = out_of_space(run.run_dir, task.index, status)
        if marker is None and status.state is State.RUNNING:
            # a bundle's task after the one it runs now has not started yet
            if queues is None:
                queues = bundle_queues(run.run_dir)
            if task.index in queues:
                status = TaskStatus(
                    State.PENDING,
                    None,
                    f"waits its turn in its bundle (task {queues[task.index]} runs)",
                )
        if marker is None and not cancelled and status.state in NOT_RUN:
            # a campaign task the scheduler dropped (SLURM's aftercorr with
            # --kill-on-invalid-dep) because a task it reads did not succeed
            if table is None:
                table = tasktable.rows(run.run_dir)
            upstream = read_upstream(run.run_dir, task.index, table)
            bad = [j for j in upstream if states.get(j) in UNDONE]
            if bad and waits_on_upstream(run.run_dir, task.index, table):
                status = TaskStatus(
                    State.UPSTREAM_WAIT, None, f"waits for task {bad[0]} to be rerun (resubmit)"
                )
            elif bad:
                status = TaskStatus(
                    State.UPSTREAM_FAILED, None, f"upstream failed (task {bad[0]} did not succeed)"
                )
        states[task.index] = status.state
        if status != task.status:
            updates[task.index] = status
    return updates


def out_of_space(run_dir: Path, index: int, status: TaskStatus) -> TaskStatus:
    """A failed task's status, naming the full disk if the wrapper found no room at its end.

    The wrapper writes ``tasks/<i>/no_space`` (the error, e.g. "No space left on device")
    when recording the attempt failed and needed the space it had reserved.
    """
    try:
        error = (run_dir / "tasks" / str(index) / "no_space").read_text().strip()
    except OSError:
        return status
    return TaskStatus(
        status.state,
        status.exit_code,
        f"{status.reason}; the run directory was full when it ended "
        f"({error or 'no space left'}): free space there, then `fcgtainer resubmit`",
    )


def step_counts(run: RunRecord, tasks: list[TaskRecord]) -> dict[str, dict[State, int]]:
    """A campaign's tasks counted per step and state (a job without steps: one step)."""
    steps = (run.manifest.get("job") or {}).get("steps") or {}
    if not steps:
        return {run.job: dict(counts(tasks))}
    out: dict[str, dict[State, int]] = {}
    for task in tasks:
        step = task.name.split(",", 1)[0].removeprefix("step=")
        mine = out.setdefault(step, {})
        mine[task.status.state] = mine.get(task.status.state, 0) + 1
    return out


def counts(tasks: list[TaskRecord]) -> Mapping[State, int]:
    """How many tasks are in each state."""
    out: dict[State, int] = {}
    for task in tasks:
        out[task.status.state] = out.get(task.status.state, 0) + 1
    return out
