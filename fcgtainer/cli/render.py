"""Rendering for the terminal with rich: tables, the dry run, the watch progress bar."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import yaml
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from fcgtainer.states import State, summarise

if TYPE_CHECKING:
    from fcgtainer.host.doctor import Check
    from fcgtainer.images.support import Pairing
    from fcgtainer.plan.tasks import Plan
    from fcgtainer.runs.journal import Journal, RunRecord, TaskRecord
    from fcgtainer.runs.submit import Submitted

COLOURS = {
    State.SUCCEEDED: "green",
    State.FAILED: "red",
    State.LOST: "red",
    State.UPSTREAM_FAILED: "dark_orange",
    State.UPSTREAM_WAIT: "yellow",
    State.HELD: "yellow",
    State.CANCELLED: "magenta",
    State.RUNNING: "cyan",
    State.REQUEUED: "yellow",
    State.PENDING: "white",
    State.UNKNOWN: "dim",
}


def keyed_table(*headers: str, keep: int = 1) -> Table:
    """A borderless table whose first ``keep`` columns (what a user types back, such as
    names and ids, and short words) are never wrapped or cut, however narrow the terminal.
    The other columns wrap instead, folding a word (a path) longer than the column: no
    cell is ever shortened to an ellipsis."""
    columns = (
        Column(h, no_wrap=True) if i < keep else Column(h, overflow="fold")
        for i, h in enumerate(headers)
    )
    return Table(
        *columns, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0)
    )


def _state(state: State) -> str:
    return f"[{COLOURS[state]}]{state.value}[/]"


def dump(console: Console, data: Mapping[str, Any]) -> None:
    """Print a model as YAML."""
    console.print(yaml.safe_dump(dict(data), sort_keys=False).rstrip())


def sites_table(console: Console) -> None:
    """Every site profile found, one line each."""
    from fcgtainer.config.site import available_sites, load_site_file
    from fcgtainer.errors import ConfigError
    from fcgtainer.paths import origin

    table = keyed_table("site", "from", "scheduler", "GPUs", "CVMFS", "description", keep=4)
    for name, path in available_sites().items():
        where = origin(path, "sites")
        try:
            site = load_site_file(path)
        except ConfigError as exc:
            table.add_row(name, where, "[red]invalid[/]", "", "", exc.message)
            continue
        gpus = f"{site.gpus.count} {site.gpus.type or ''}".strip() if site.gpus.count else "-"
        cvmfs = ", ".join(r.removesuffix(".cern.ch") for r in site.cvmfs.repositories) or "-"
        table.add_row(name, where, site.scheduler, gpus, cvmfs, site.description)
    console.print(table)
    search_path_note(console, "sites")


def jobs_table(console: Console) -> None:
    """Every job definition found, with its number of tasks."""
    from fcgtainer.config.job import available_jobs, load_job_file
    from fcgtainer.errors import ConfigError
    from fcgtainer.paths import origin

    table = keyed_table("job", "from", "tasks", "image", "description", keep=4)
    for name, path in available_jobs().items():
        where = origin(path, "jobs")
        try:
            job = load_job_file(path)
        except ConfigError as exc:
            table.add_row(name, where, "[red]invalid[/]", "", exc.message)
            continue
        n = 1
        for values in job.axes().values():
            n *= len(values)
        table.add_row(name, where, str(n), job.image or "-", job.description)
    console.print(table)
    search_path_note(console, "jobs")


def search_path_note(console: Console, kind: str) -> None:
    """Where ``kind`` were searched, first match wins."""
    from fcgtainer.paths import search_path

    dirs = ", ".join(f"{d.origin} {d.path}" for d in search_path(kind))
    console.print(f"[dim]{kind} searched in (first match wins): {dirs}[/]", soft_wrap=True)


def dry_run(console: Console, plan: Plan, checks: Sequence[str] = (), shown: int = 10) -> None:
    """The tasks and exactly what would be submitted, without submitting; ``checks``: what
    the job's checks said of every task's spec."""
    from fcgtainer.backends import get_backend
    from fcgtainer.config.loader import format_walltime
    from fcgtainer.plan.container import task_argv
    from fcgtainer.plan.tasks import task_spec

    r = plan.resources
    console.print(
        f"[bold]{plan.job.name}[/] on [bold]{plan.site.name}[/] ({plan.site.scheduler}, "
        f"{plan.runtime}): {len(plan.tasks)} task(s), each {r.cpus} cpu, {r.memory} MB, "
        f"{r.gpus} gpu, {format_walltime(r.walltime)}"
    )
    console.print(f"run directory: {plan.run_dir}")
    for said in checks:
        console.print(f"check {said}", soft_wrap=True, markup=False)
    for step in plan.steps:
        needs = ", ".join(f"{name} ({how})" for name, how in step.needs.items()) or "nothing"
        end = step.offset + len(step.plan.tasks) - 1
        console.print(
            f"step [bold]{step.name}[/]: tasks {step.offset}..{end} "
            f"({len(step.plan.tasks)}), needs {needs}"
        )
    if plan.steps:  # a campaign: its first step's tasks stand for the rest
        whole, plan = plan, plan.steps[0].plan
    else:
        whole = plan
    table = keyed_table("task", *plan.axes.keys())
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
    console.print(f"[bold]what {plan.site.scheduler} would receive[/]")
    console.print(get_backend(plan.site).describe(whole), soft_wrap=True, markup=False)


def submitted(console: Console, done: Submitted) -> None:
    """One line per submission, with the commands to follow it."""
    plan = done.plan
    verb = "adopted earlier submission of" if done.adopted else "submitted"
    console.print(
        f"{verb} run [bold]{plan.run_id[:8]}[/] ({plan.job.name}, {len(done.ids)} task(s)) "
        f"to {plan.site.name}"
    )
    if done.cached:
        steps: dict[str, int] = {}
        for index in done.cached:
            name = plan.step_of(index).name
            steps[name] = steps.get(name, 0) + 1
        each = ", ".join(f"{name} {n}" for name, n in steps.items())
        console.print(
            f"  skipped {len(done.cached)} task(s) with a result under the same key ({each}); "
            "--force reruns them"
        )
        if not done.ids:
            console.print("  nothing changed: no scheduler call")
    if done.waiting:
        console.print(
            f"  {done.waiting} task(s) wait for room: {done.note}. A feeder in the "
            f"background submits them as tasks finish ({plan.run_dir}/feeder.log; where a "
            "logout stops it, run `fcgtainer resubmit --waiting "
            f"{plan.run_id[:8]}` from cron), or bundle tasks to need fewer jobs",
            soft_wrap=True,
            markup=False,
        )
    console.print(f"  run directory: {plan.run_dir}")
    console.print(f"  follow it:     fcgtainer status {plan.run_id[:8]} --watch")


def runs_table(console: Console, runs: Sequence[tuple[RunRecord, list[TaskRecord]]]) -> None:
    """Recent runs with their task counts."""
    table = keyed_table(
        "run", "job", "site", "submitted", "state", "tasks", "done", "failed", keep=8
    )
    for run, tasks in runs:
        states = [t.status.state for t in tasks]
        done = sum(s is State.SUCCEEDED for s in states)
        bad = sum(s in (State.FAILED, State.LOST, State.UPSTREAM_FAILED) for s in states)
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
    from fcgtainer.runs.monitor import counts

    summary = ", ".join(f"{n} {s.value}" for s, n in sorted(counts(tasks).items()))
    console.print(f"run [bold]{run.id}[/] {run.job} on {run.site}: {summary}")
    if (run.manifest.get("job") or {}).get("steps"):
        from fcgtainer.runs.monitor import step_counts

        for step, numbers in step_counts(run, tasks).items():
            each = ", ".join(f"{n} {_state(s)}" for s, n in sorted(numbers.items()))
            console.print(f"  step [bold]{step}[/]: {each}")
    console.print(f"run directory: {run.run_dir}")
    shown = tasks if all_tasks else [t for t in tasks if t.status.state is not State.SUCCEEDED]
    if not shown:
        return
    from fcgtainer.runs.rundir import attempts, max_requeues, requeues

    table = keyed_table(
        "task", "name", "state", "exit", "attempts", "requeues", "reason", "scheduler id", keep=6
    )
    for t in shown[:200]:
        code = "" if t.status.exit_code is None else str(t.status.exit_code)
        table.add_row(
            str(t.index),
            t.name,
            _state(t.status.state),
            code,
            str(attempts(run.run_dir, t.index)),
            f"{requeues(run.run_dir, t.index)}/{max_requeues(run.run_dir, t.index)}",
            t.status.reason,
            _scheduler_id(run, t.backend_id),
        )
    console.print(table)
    if len(shown) > 200:
        console.print(f"... and {len(shown) - 200} more (--all lists every task)")
    waiting = sum(t.status.state is State.UPSTREAM_WAIT for t in tasks)
    if waiting:
        console.print(
            f"{waiting} task(s) wait for an upstream task that did not succeed: fix its cause, "
            f"then `fcgtainer resubmit {run.id[:8]}` reruns it and them",
            markup=False,
        )


def _scheduler_id(run: RunRecord, backend_id: str | None) -> str:
    """A task's id at its scheduler; the local backend's (``RUN_DIR#N``) as ``local#N``."""
    if backend_id and backend_id.startswith(f"{run.run_dir}#"):
        return "local" + backend_id[len(str(run.run_dir)) :]
    return backend_id or ""


def watch(console: Console, journal: Journal, run: RunRecord) -> int:
    """A progress bar until every task has finished; 1 if any did not succeed."""
    from fcgtainer.runs import follow, monitor

    tasks: list[TaskRecord] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task(f"run {run.id[:8]}", total=None, detail="")
        for tasks in follow.watch(journal, run):
            done = sum(t.status.state.terminal for t in tasks)
            detail = ", ".join(f"{n} {s.value}" for s, n in sorted(monitor.counts(tasks).items()))
            progress.update(bar, total=len(tasks), completed=done, detail=detail)
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
    from fcgtainer.runs.follow import log_chunks

    for chunk in log_chunks(journal, run, index, follow=follow):
        console.out(chunk.decode(errors="replace"), end="", highlight=False)


def doctor_table(console: Console, checks: Sequence[Check]) -> None:
    """The host report: one row per check, with a fix for each problem."""
    table = keyed_table("check", "status", "detail", "fix", keep=2)
    marks = {
        "ok": "[green]ok[/]",
        "warn": "[yellow]warn[/]",
        "fail": "[red]fail[/]",
        "info": "[dim]info[/]",
    }
    for check in checks:
        table.add_row(check.name, marks[check.status], check.detail, check.fix)
    console.print(table)


def pairing(console: Console, verdict: Pairing) -> None:
    """The image a run uses (recipe, LCG view, versions), then each doubt about the pairing."""
    console.print(verdict.summary(), soft_wrap=True, markup=False)
    for name, status, detail, fix in verdict.rows:
        if status == "warn":
            line = f"[yellow]warning:[/] {name}: {detail}"
            console.print(line + (f" (fix: {fix})" if fix else ""), soft_wrap=True)
