"""Acting on submitted runs: cancel and resubmit, through the run's own backend."""

from __future__ import annotations

from collections.abc import Sequence

from fcgtainer.backends import get_backend
from fcgtainer.errors import ConfigError
from fcgtainer.runs import monitor
from fcgtainer.runs.journal import Journal, RunRecord
from fcgtainer.states import State, TaskStatus


def cancel(journal: Journal, run: RunRecord, indices: Sequence[int] | None) -> int:
    """Cancel every unfinished task of ``run`` (or only ``indices``) in one call."""
    tasks = monitor.refresh(journal, run)
    chosen = [t for t in tasks if indices is None or t.index in set(indices)]
    if indices is not None and len(chosen) != len(set(indices)):
        raise ConfigError(f"--task: run {run.id[:8]} has tasks 0..{len(tasks) - 1}", "")
    # unfinished tasks, with or without a scheduler id (one that never reached the scheduler
    # is cancelled too, not left unknown)
    live = [t for t in chosen if not t.status.state.terminal]
    ids = [t.backend_id for t in live if t.backend_id]
    if ids:
        get_backend(monitor.site_of(run)).cancel(ids)
    if indices is None:
        journal.set_phase(run.id, "cancelled")
    journal.update_states(
        run.id, {t.index: TaskStatus(State.CANCELLED, reason="cancelled by user") for t in live}
    )
    return len(live)


FAILED = frozenset({State.FAILED, State.LOST, State.UPSTREAM_FAILED, State.UPSTREAM_WAIT})
CANCELLED = frozenset({State.CANCELLED})


def resubmit(
    journal: Journal,
    run: RunRecord,
    *,
    states: frozenset[State] | set[State] = FAILED,
    waiting: bool = False,
    feeder: bool = True,
) -> int:
    """Submit the tasks of ``run`` in ``states`` again (default: failed and lost), at once.

    In a campaign, the tasks that read them (per_task: the same slice; all: the whole later
    step) go again too, and nothing else: a succeeded task is never rerun.

    ``waiting``: also the tasks the scheduler had no room for (run phase ``feeding``); as
    many as fit now go, chained on the upstream tasks still queued; the rest keep waiting
    for the next call, and the run's feeder is started for them unless ``feeder`` is off
    (the feeder itself calls this: :mod:`fcgtainer.runs.feeder`).
    """
    from fcgtainer.plan.tasks import make_plan, with_dependents
    from fcgtainer.runs.submit import FEEDING, plan_run, record_submitted

    tasks = monitor.refresh(journal, run)
    feeding = waiting and run.phase == FEEDING
    chosen = [
        t.index
        for t in tasks
        if t.status.state in states
        or (feeding and not t.backend_id and not t.status.state.terminal)
    ]
    if not chosen:
        if feeding:  # nothing waits any more: the run's feeder stops
            journal.set_phase(run.id, "submitted", only_from=FEEDING)
        return 0
    job_ref = run.manifest["job"]["source"]
    plan = plan_run(
        job_ref,
        run.manifest["site_source"],
        [f"{k}={v}" for k, v in run.manifest["sets"].items()],
        image=(run.manifest.get("image") or {}).get("path"),
        run_id=run.id,
        max_tasks=len(tasks),  # the size was accepted when the run was submitted
        payload=(run.manifest.get("payload") or {}).get("from"),
    )
    plan = make_plan(
        plan.job,
        monitor.site_of(run),
        plan.sets,
        run.id,
        runtime=run.manifest["runtime"],
        image=plan.image,
        max_tasks=len(tasks),
        payload=plan.payload,
    )
    if len(plan.tasks) != len(tasks):
        raise ConfigError(
            f"{job_ref}: the job now expands to {len(plan.tasks)} tasks, the run had {len(tasks)}",
            "submit it as a new run instead",
        )
    chosen = with_dependents(plan, chosen)
    backend = get_backend(plan.site)
    # a dependent still queued (waiting on the failed task) is replaced, not run twice
    wanted = set(chosen)
    stale = [
        t.backend_id
        for t in tasks
        if t.index in wanted and t.backend_id and not t.status.state.terminal
    ]
    if stale:
        backend.cancel(stale)
    for index in chosen:
        (plan.task_dir(index) / "exit_code").unlink(missing_ok=True)
        (plan.task_dir(index) / "cancelled").unlink(missing_ok=True)
        (plan.task_dir(index) / "requeues").unlink(missing_ok=True)  # a fresh budget
        (plan.task_dir(index) / "requeue_limit").unlink(missing_ok=True)
    (plan.run_dir / "cancelled").unlink(missing_ok=True)
    queued = {
        t.index: t.backend_id
        for t in tasks
        if t.backend_id and t.index not in wanted and t.status.state in monitor.ACTIVE
    }
    if feeding and journal.run(run.id).phase == "cancelled":
        return 0  # cancelled while this feeder round was planning: submit nothing
    # tasks not chosen this time (resubmit --failed) may still wait for room
    others_wait = run.phase == FEEDING and any(
        t.index not in wanted and not t.backend_id and not t.status.state.terminal for t in tasks
    )
    ids = backend.submit(plan, chosen, queued=queued)
    record_submitted(journal, run.id, chosen, ids, backend, feeder=feeder, others_wait=others_wait)
    return len(ids)
