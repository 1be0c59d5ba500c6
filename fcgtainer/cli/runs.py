"""CLI commands for runs: ``submit``, ``status``, ``logs``, ``cancel``, ``resubmit``."""

from __future__ import annotations

from typing import Annotated

import typer

from fcgtainer.cli.app import RunArg, SiteOpt, app, out


@app.command()
def submit(
    job: Annotated[str, typer.Argument(help="Job name, directory or job.yaml path.")],
    site: SiteOpt = "local",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override: param=value, axis=a,b or 20..24, runs=1..4."),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(help="Use this .sif (or oras://host/name:tag) instead of the job's image."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the tasks and what would be submitted.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Watch the run until every task has finished.")
    ] = False,
    payload: Annotated[
        str | None,
        typer.Option(
            "--payload",
            help="Whose jobs/ code Apptainer tasks run: 'image' (baked in, the default) or "
            "'checkout' (this checkout's, bound over it). Default: the site's payload key.",
        ),
    ] = None,
    max_tasks: Annotated[
        int | None,
        typer.Option(
            "--max-tasks",
            min=1,
            help="Confirm a matrix this large (default limit: the site's max_tasks, 100000).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="A campaign: rerun tasks whose results exist under the same key."
        ),
    ] = False,
) -> None:
    """Submit a job to a site: one task per element of its parameter matrix.

    A job with ``steps:`` is a campaign: every step is submitted at once, chained by the
    scheduler's own dependencies; tasks whose results exist under the same key are skipped.
    """
    from fcgtainer.cli import render
    from fcgtainer.errors import ConfigError
    from fcgtainer.plan.tasks import Payload
    from fcgtainer.runs import submit as runs

    if payload not in (None, "image", "checkout"):
        raise ConfigError(f"--payload {payload!r}: expected image or checkout", "")
    chosen: Payload | None = (
        "checkout" if payload == "checkout" else "image" if payload == "image" else None
    )
    plan = runs.plan_run(job, site, set_ or [], image=image, max_tasks=max_tasks, payload=chosen)
    if plan.image is not None:
        from fcgtainer.images.support import check_pairing

        render.pairing(out, check_pairing(plan.job, image))
    if dry_run:
        checked = runs.check_specs(plan)  # what the payload would refuse, refused now
        render.dry_run(out, plan, checked.said)
        return
    from fcgtainer.runs.journal import Journal

    journal = Journal()
    done = runs.submit(plan, journal, force=force)
    render.submitted(out, done)
    if wait:
        _watch(journal, done.plan.run_id)


@app.command()
def status(
    run: Annotated[
        str | None, typer.Argument(help="Run id or 'last'; all recent runs if omitted.")
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Refresh until every task has finished.")
    ] = False,
    all_tasks: Annotated[bool, typer.Option("--all", help="List every task.")] = False,
) -> None:
    """Show runs and their tasks, asking each scheduler once per refresh."""
    from fcgtainer.cli import render
    from fcgtainer.runs import monitor
    from fcgtainer.runs.journal import Journal

    journal = Journal()
    if run is None:
        records = journal.runs()
        fresh = monitor.refresh_many(journal, records)
        render.runs_table(out, [(r, fresh[r.id]) for r in records])
        return
    record = journal.run(run)
    if watch:
        _watch(journal, record.id)
        return
    render.run_detail(out, record, monitor.refresh(journal, record), all_tasks=all_tasks)


def _watch(journal: object, run_id: str) -> None:
    from fcgtainer.cli import render
    from fcgtainer.runs.journal import Journal

    assert isinstance(journal, Journal)
    record = journal.run(run_id)
    code = render.watch(out, journal, record)
    from fcgtainer.runs import monitor
    from fcgtainer.runs import report as reports

    path = reports.build(record, monitor.refresh(journal, record))
    out.print(f"report: {path}", soft_wrap=True, markup=False)
    if code:
        raise typer.Exit(code)


@app.command()
def logs(
    run: RunArg,
    task: Annotated[int, typer.Option("--task", "-t", help="Task index.")] = 0,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the task ends.")
    ] = False,
) -> None:
    """Print a task's log (every attempt, in order)."""
    from fcgtainer.cli import render
    from fcgtainer.runs.journal import Journal

    journal = Journal()
    render.show_log(out, journal, journal.run(run), task, follow=follow)


@app.command()
def cancel(
    run: RunArg,
    task: Annotated[
        list[int] | None, typer.Option("--task", "-t", help="Only these task indices.")
    ] = None,
) -> None:
    """Cancel a run (every task) or some of its tasks."""
    from fcgtainer.runs import control
    from fcgtainer.runs.journal import Journal

    journal = Journal()
    n = control.cancel(journal, journal.run(run), task)
    out.print(f"cancelled {n} task(s)")


@app.command()
def resubmit(
    run: RunArg,
    failed: Annotated[
        bool, typer.Option("--failed", help="Tasks that failed or were lost (the default).")
    ] = False,
    cancelled: Annotated[
        bool, typer.Option("--cancelled", help="Tasks that were cancelled.")
    ] = False,
    waiting: Annotated[
        bool,
        typer.Option(
            "--waiting",
            help="Tasks the scheduler had no room for yet (SLURM MaxJobCount/MaxSubmitJobs): "
            "submit as many as fit now.",
        ),
    ] = False,
    all_: Annotated[
        bool, typer.Option("--all", help="Failed, lost, cancelled and waiting tasks.")
    ] = False,
) -> None:
    """Submit some of a run's tasks again, under the same run (default: --failed)."""
    from fcgtainer.runs import control
    from fcgtainer.runs.journal import Journal
    from fcgtainer.states import State

    states: set[State] = set()
    if failed or all_ or not (cancelled or waiting):
        states |= control.FAILED
    if cancelled or all_:
        states |= control.CANCELLED
    journal = Journal()
    record = journal.run(run)
    n = control.resubmit(journal, record, states=states, waiting=waiting or all_)
    if n:
        out.print(f"resubmitted {n} task(s)")
        return
    which = sorted(s.value for s in states) + (["waiting"] if waiting or all_ else [])
    listed = f"{', '.join(which[:-1])} or {which[-1]}" if len(which) > 1 else which[0]
    out.print(
        f"nothing to resubmit: no task of run {record.id[:8]} is {listed} "
        f"(`fcgtainer status {record.id[:8]}` shows each task's state)",
        markup=False,
    )
    left = journal.run(record.id)
    if left.phase == "feeding":
        tasks = journal.tasks(record.id)
        rest = [t for t in tasks if not t.backend_id and not t.status.state.terminal]
        out.print(
            f"  {len(rest)} task(s) still wait for room in the queue: the run's feeder "
            f"submits them as tasks finish ({left.run_dir}/feeder.log)"
        )


@app.command()
def report(run: RunArg) -> None:
    """Write the run's static report (report/index.html) from what exists, print its path."""
    from fcgtainer.runs import monitor
    from fcgtainer.runs import report as reports
    from fcgtainer.runs.journal import Journal

    journal = Journal()
    record = journal.run(run)
    path = reports.build(record, monitor.refresh(journal, record))
    out.print(str(path), soft_wrap=True, markup=False)
