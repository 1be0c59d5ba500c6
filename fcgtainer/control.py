"""Acting on submitted runs: cancel and resubmit, through the run's own backend."""

from __future__ import annotations

from collections.abc import Sequence

from fcgtainer import monitor
from fcgtainer.backends import get_backend
from fcgtainer.errors import ConfigError
from fcgtainer.journal import Journal, RunRecord
from fcgtainer.states import State, TaskStatus


def cancel(journal: Journal, run: RunRecord, indices: Sequence[int] | None) -> int:
    """Cancel every unfinished task of ``run`` (or only ``indices``) in one call."""
    tasks = monitor.refresh(journal, run)
    chosen = [t for t in tasks if indices is None or t.index in set(indices)]
    if indices is not None and len(chosen) != len(set(indices)):
        raise ConfigError(f"--task: run {run.id[:8]} has tasks 0..{len(tasks) - 1}", "")
    live = [t for t in chosen if not t.status.state.terminal and t.backend_id]
    if live:
        get_backend(monitor.site_of(run)).cancel([t.backend_id for t in live if t.backend_id])
    if indices is None:
        journal.set_phase(run.id, "cancelled")
    journal.update_states(
        run.id, {t.index: TaskStatus(State.CANCELLED, reason="cancelled by user") for t in live}
    )
    return len(live)


def resubmit(journal: Journal, run: RunRecord, *, only_failed: bool = True) -> int:
    """Submit the failed or lost tasks of ``run`` again, in one scheduler call."""
    from fcgtainer.plan import make_plan
    from fcgtainer.runs import plan_run

    tasks = monitor.refresh(journal, run)
    again_states = {State.FAILED, State.LOST} | (set() if only_failed else {State.CANCELLED})
    chosen = [t.index for t in tasks if t.status.state in again_states]
    if not chosen:
        return 0
    job_ref = run.manifest["job"]["source"]
    plan = plan_run(
        job_ref,
        run.manifest["site_source"],
        [f"{k}={v}" for k, v in run.manifest["sets"].items()],
        image=(run.manifest.get("image") or {}).get("path"),
        run_id=run.id,
    )
    plan = make_plan(
        plan.job,
        monitor.site_of(run),
        plan.sets,
        run.id,
        runtime=run.manifest["runtime"],
        image=plan.image,
    )
    if len(plan.tasks) != len(tasks):
        raise ConfigError(
            f"{job_ref}: the job now expands to {len(plan.tasks)} tasks, the run had {len(tasks)}",
            "submit it as a new run instead",
        )
    for index in chosen:
        (plan.task_dir(index) / "exit_code").unlink(missing_ok=True)
        (plan.task_dir(index) / "cancelled").unlink(missing_ok=True)
    (plan.run_dir / "cancelled").unlink(missing_ok=True)
    ids = get_backend(plan.site).submit(plan, chosen)
    journal.set_backend_ids(run.id, ids)
    return len(ids)
