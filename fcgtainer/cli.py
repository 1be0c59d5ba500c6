"""The command line: thin typer commands that parse, call one function and render.

Heavy modules (pydantic models, backends, TensorFlow never) are imported inside the
commands, so ``fcgtainer --help`` starts as fast as typer itself.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    name="fcgtainer",
    help="Run FastCaloGAN training and Lamarr generation in a CERN-like Apptainer "
    "environment, on HTCondor, SLURM or this machine.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rendering rich markdown would double start-up time
)
sites_app = typer.Typer(help="Site profiles (sites/*.yaml).", no_args_is_help=False)
jobs_app = typer.Typer(help="Job definitions (jobs/*/job.yaml).", no_args_is_help=False)
app.add_typer(sites_app, name="sites")
app.add_typer(jobs_app, name="jobs")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
_debug = False

SiteOpt = Annotated[str, typer.Option("--site", "-s", help="Site profile name or YAML path.")]
RunArg = Annotated[str, typer.Argument(help="Run id (a unique prefix is enough) or 'last'.")]


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    global _debug
    _debug = debug


# --- sites and jobs ---------------------------------------------------------------------


@sites_app.callback(invoke_without_command=True)
def sites_list(ctx: typer.Context) -> None:
    """List the site profiles fcgtainer can find."""
    if ctx.invoked_subcommand:
        return
    from fcgtainer import views

    views.sites_table(out)


@sites_app.command("show")
def sites_show(name: Annotated[str, typer.Argument(help="Site name or YAML path.")]) -> None:
    """Show a site profile as loaded, with every default filled in."""
    from fcgtainer import views
    from fcgtainer.site import load_site

    views.dump(out, load_site(name).model_dump(mode="json"))


@jobs_app.callback(invoke_without_command=True)
def jobs_list(ctx: typer.Context) -> None:
    """List the job definitions fcgtainer can find."""
    if ctx.invoked_subcommand:
        return
    from fcgtainer import views

    views.jobs_table(out)


@jobs_app.command("show")
def jobs_show(name: Annotated[str, typer.Argument(help="Job name or path.")]) -> None:
    """Show a job definition as loaded, with its matrix size."""
    from fcgtainer import views
    from fcgtainer.job import load_job

    job = load_job(name)
    views.dump(out, job.model_dump(mode="json") | {"tasks": _count(job.axes())})


def _count(axes: Mapping[str, Sequence[object]]) -> int:
    total = 1
    for values in axes.values():
        total *= len(values)
    return total


# --- runs -------------------------------------------------------------------------------


@app.command()
def submit(
    job: Annotated[str, typer.Argument(help="Job name, directory or job.yaml path.")],
    site: SiteOpt = "local",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override: param=value, axis=a,b or 20..24, runs=1..4."),
    ] = None,
    image: Annotated[
        str | None, typer.Option(help="Use this .sif instead of the job's image.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the tasks and what would be submitted.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Watch the run until every task has finished.")
    ] = False,
) -> None:
    """Submit a job to a site: one task per element of its parameter matrix."""
    from fcgtainer import runs, views

    plan = runs.plan_run(job, site, set_ or [], image=image)
    if dry_run:
        views.dry_run(out, plan)
        return
    from fcgtainer.journal import Journal

    journal = Journal()
    done = runs.submit(plan, journal)
    views.submitted(out, done)
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
    from fcgtainer import monitor, views
    from fcgtainer.journal import Journal

    journal = Journal()
    if run is None:
        records = journal.runs()
        fresh = monitor.refresh_many(journal, records)
        views.runs_table(out, [(r, fresh[r.id]) for r in records])
        return
    record = journal.run(run)
    if watch:
        _watch(journal, record.id)
        return
    views.run_detail(out, record, monitor.refresh(journal, record), all_tasks=all_tasks)


def _watch(journal: object, run_id: str) -> None:
    from fcgtainer import views
    from fcgtainer.journal import Journal

    assert isinstance(journal, Journal)
    code = views.watch(out, journal, journal.run(run_id))
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
    from fcgtainer import views
    from fcgtainer.journal import Journal

    journal = Journal()
    views.show_log(out, journal, journal.run(run), task, follow=follow)


@app.command()
def cancel(
    run: RunArg,
    task: Annotated[
        list[int] | None, typer.Option("--task", "-t", help="Only these task indices.")
    ] = None,
) -> None:
    """Cancel a run (every task) or some of its tasks."""
    from fcgtainer import control
    from fcgtainer.journal import Journal

    journal = Journal()
    n = control.cancel(journal, journal.run(run), task)
    out.print(f"cancelled {n} task(s)")


@app.command()
def resubmit(
    run: RunArg,
    failed: Annotated[
        bool, typer.Option("--failed", help="Only tasks that failed or were lost.")
    ] = True,
) -> None:
    """Submit a run's failed tasks again, under the same run."""
    from fcgtainer import control
    from fcgtainer.journal import Journal

    journal = Journal()
    n = control.resubmit(journal, journal.run(run), only_failed=failed)
    out.print(f"resubmitted {n} task(s)")


@app.command()
def doctor(
    site: Annotated[
        str | None, typer.Option("--site", "-s", help="Also check this site's needs.")
    ] = None,
) -> None:
    """Report what this host can do: Apptainer, namespaces, FUSE, CVMFS, GPUs, schedulers."""
    from fcgtainer import doctor as doc
    from fcgtainer import views

    checks = doc.run_checks(site)
    views.doctor_table(out, checks)


def main() -> None:
    """Console entry point: one red line plus a hint on error, tracebacks with --debug."""
    from fcgtainer.errors import FcgError

    try:
        code = app(standalone_mode=False)
    except FcgError as exc:
        if _debug:
            err.print_exception()
        err.print(f"[bold red]error:[/] {exc.message}", soft_wrap=True)
        if exc.hint:
            err.print(f"[yellow]fix:[/] {exc.hint}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors and the unexpected
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2)
        if _debug:
            raise
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc}")
        err.print("[yellow]fix:[/] run again with --debug and report the traceback")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


# Image commands (build, images, shell) live in their own module and register on ``app``.
from fcgtainer import cli_images  # noqa: E402,F401
