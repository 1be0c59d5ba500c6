"""Rendering for the terminal with rich: tables, the dry run, the watch progress bar."""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fcgtainer.states import State, summarise

if TYPE_CHECKING:
    from fcgtainer.doctor import Check
    from fcgtainer.journal import Journal, RunRecord, TaskRecord
    from fcgtainer.plan import Plan
    from fcgtainer.runs import Submitted

COLOURS = {
    State.SUCCEEDED: "green",
    State.FAILED: "red",
    State.LOST: "red",
    State.HELD: "yellow",
    State.CANCELLED: "magenta",
    State.RUNNING: "cyan",
    State.REQUEUED: "yellow",
    State.PENDING: "white",
    State.UNKNOWN: "dim",
}


def _state(state: State) -> str:
    return f"[{COLOURS[state]}]{state.value}[/]"


def dump(console: Console, data: Mapping[str, Any]) -> None:
    """Print a model as YAML."""
    console.print(yaml.safe_dump(dict(data), sort_keys=False).rstrip())


def sites_table(console: Console) -> None:
    """Every site profile found, one line each."""
    from fcgtainer.errors import ConfigError
    from fcgtainer.site import available_sites, load_site_file

    table = Table("site", "scheduler", "runtime", "GPUs", "CVMFS", "description")
    for name, path in available_sites().items():
        try:
            site = load_site_file(path)
        except ConfigError as exc:
            table.add_row(name, "[red]invalid[/]", "", "", "", exc.message)
            continue
        gpus = f"{site.gpus.count} {site.gpus.type or ''}".strip() if site.gpus.count else "-"
        cvmfs = ", ".join(f"{r}:{m}" for r, m in site.cvmfs.repositories.items()) or "-"
        table.add_row(name, site.scheduler, site.runtime, gpus, cvmfs, site.description)
    console.print(table)


def jobs_table(console: Console) -> None:
    """Every job definition found, with its number of tasks."""
    from fcgtainer.errors import ConfigError
    from fcgtainer.job import available_jobs, load_job_file

    table = Table("job", "tasks", "image", "description")
    for name, path in available_jobs().items():
        try:
            job = load_job_file(path)
        except ConfigError as exc:
            table.add_row(name, "[red]invalid[/]", "", exc.message)
            continue
        n = 1
        for values in job.axes().values():
            n *= len(values)
        table.add_row(name, str(n), job.image or "-", job.description)
    console.print(table)


def dry_run(console: Console, plan: Plan, shown: int = 10) -> None:
    """The tasks and exactly what would be submitted, without submitting."""
    from fcgtainer.backends import get_backend
    from fcgtainer.config import format_walltime
    from fcgtainer.container import task_argv
    from fcgtainer.plan import task_spec

    r = plan.resources
    console.print(
        f"[bold]{plan.job.name}[/] on [bold]{plan.site.name}[/] ({plan.site.scheduler}, "
        f"{plan.runtime}): {len(plan.tasks)} task(s), each {r.cpus} cpu, {r.memory} MB, "
        f"{r.gpus} gpu, {format_walltime(r.walltime)}"
    )
    console.print(f"run directory: {plan.run_dir}")
    table = Table("task", *plan.axes.keys())
    for task in plan.tasks[:shown]:
        table.add_row(str(task.index), *(str(v) for v in task.values.values()))
    if len(plan.tasks) > shown:
        table.add_row("...", *("..." for _ in plan.axes), end_section=True)
        last = plan.tasks[-1]
        table.add_row(str(last.index), *(str(v) for v in last.values.values()))
    console.print(table)
    first = plan.tasks[0]
    console.print("[bold]spec.json of task 0[/]")
    console.print_json(data=task_spec(plan, first))
    console.print("[bold]argv of task 0[/] (run by the job wrapper)")
    console.print(shlex.join(task_argv(plan, first)), soft_wrap=True, markup=False)
    backend = get_backend(plan.site)
    describe = getattr(backend, "describe", None)
    if describe is not None:
        console.print(f"[bold]what {plan.site.scheduler} would receive[/]")
        console.print(describe(plan), soft_wrap=True, markup=False)


def submitted(console: Console, done: Submitted) -> None:
    """One line per submission, with the commands to follow it."""
    plan = done.plan
    verb = "adopted earlier submission of" if done.adopted else "submitted"
    console.print(
        f"{verb} run [bold]{plan.run_id[:8]}[/] ({plan.job.name}, {len(done.ids)} task(s)) "
        f"to {plan.site.name}"
    )
    console.print(f"  run directory: {plan.run_dir}")
    console.print(f"  follow it:     fcgtainer status {plan.run_id[:8]} --watch")


def runs_table(console: Console, runs: Sequence[tuple[RunRecord, list[TaskRecord]]]) -> None:
    """Recent runs with their task counts."""
    table = Table("run", "job", "site", "submitted", "state", "tasks", "done", "failed")
    for run, tasks in runs:
        states = [t.status.state for t in tasks]
        done = sum(s is State.SUCCEEDED for s in states)
        bad = sum(s in (State.FAILED, State.LOST) for s in states)
        when = datetime.fromtimestamp(run.created).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            run.id[:8],
            run.job,
            run.site,
            when,
            _state(summarise(states)),
            str(len(tasks)),
            str(done),
            str(bad) if bad else "",
        )
    console.print(table)


def run_detail(
    console: Console, run: RunRecord, tasks: list[TaskRecord], *, all_tasks: bool
) -> None:
    """A run's summary and its tasks (all, or those not succeeded)."""
    from fcgtainer.monitor import counts

    summary = ", ".join(f"{n} {s.value}" for s, n in sorted(counts(tasks).items()))
    console.print(f"run [bold]{run.id}[/] {run.job} on {run.site}: {summary}")
    console.print(f"run directory: {run.run_dir}")
    shown = tasks if all_tasks else [t for t in tasks if t.status.state is not State.SUCCEEDED]
    if not shown:
        return
    from fcgtainer.rundir import attempts

    table = Table("task", "name", "state", "exit", "attempts", "reason", "scheduler id")
    for t in shown[:200]:
        code = "" if t.status.exit_code is None else str(t.status.exit_code)
        table.add_row(
            str(t.index),
            t.name,
            _state(t.status.state),
            code,
            str(attempts(run.run_dir, t.index)),
            t.status.reason,
            t.backend_id or "",
        )
    console.print(table)
    if len(shown) > 200:
        console.print(f"... and {len(shown) - 200} more (--all lists every task)")


def watch(console: Console, journal: Journal, run: RunRecord) -> int:
    """Refresh with backoff until every task has finished; 1 if any did not succeed."""
    from fcgtainer import monitor

    delay, ceiling = 1.0, 30.0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task(f"run {run.id[:8]}", total=None, detail="")
        while True:
            tasks = monitor.refresh(journal, run)
            done = sum(t.status.state.terminal for t in tasks)
            detail = ", ".join(f"{n} {s.value}" for s, n in sorted(monitor.counts(tasks).items()))
            progress.update(bar, total=len(tasks), completed=done, detail=detail)
            if done == len(tasks):
                break
            time.sleep(delay)
            delay = min(ceiling, delay * 1.5)
    bad = [t for t in tasks if t.status.state is not State.SUCCEEDED]
    if bad:
        run_detail(console, run, tasks, all_tasks=False)
        return 1
    console.print(f"[green]all {len(tasks)} task(s) succeeded[/]; output in {run.run_dir}/out")
    return 0


def show_log(
    console: Console, journal: Journal, run: RunRecord, index: int, *, follow: bool
) -> None:
    """Print a task's log; with ``follow``, keep printing until the task ends."""
    from fcgtainer import monitor
    from fcgtainer.errors import NotFoundError
    from fcgtainer.rundir import log_path

    path = log_path(run.run_dir, index)
    if not path.parent.is_dir():
        raise NotFoundError(f"run {run.id[:8]} has no task {index}", "see fcgtainer status")
    offset = 0
    while True:
        if path.exists():
            with path.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
                offset += len(chunk)
            if chunk:
                console.out(chunk.decode(errors="replace"), end="", highlight=False)
        if not follow:
            return
        tasks = monitor.refresh(journal, run)
        if tasks[index].status.state.terminal:
            follow = False
            continue
        time.sleep(1.0)


def doctor_table(console: Console, checks: Sequence[Check]) -> None:
    """The host report: one row per check, with a fix for each problem."""
    table = Table("check", "status", "detail", "fix")
    marks = {
        "ok": "[green]ok[/]",
        "warn": "[yellow]warn[/]",
        "fail": "[red]fail[/]",
        "info": "[dim]info[/]",
    }
    for check in checks:
        table.add_row(check.name, marks[check.status], check.detail, check.fix)
    console.print(table)
