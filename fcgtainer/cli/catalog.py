"""CLI commands for the catalog: ``sites`` and ``jobs`` (list and show)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated

import typer

from fcgtainer.cli.app import app, out

sites_app = typer.Typer(help="Site profiles (sites/*.yaml).", no_args_is_help=False)
jobs_app = typer.Typer(help="Job definitions (jobs/*/job.yaml).", no_args_is_help=False)
app.add_typer(sites_app, name="sites")
app.add_typer(jobs_app, name="jobs")


@sites_app.callback(invoke_without_command=True)
def sites_list(ctx: typer.Context) -> None:
    """List the site profiles fcgtainer can find."""
    if ctx.invoked_subcommand:
        return
    from fcgtainer.cli import render

    render.sites_table(out)


@sites_app.command("show")
def sites_show(name: Annotated[str, typer.Argument(help="Site name or YAML path.")]) -> None:
    """Show a site profile as loaded, with every default filled in."""
    from fcgtainer.cli import render
    from fcgtainer.config.site import load_site

    render.dump(out, load_site(name).model_dump(mode="json"))


@jobs_app.callback(invoke_without_command=True)
def jobs_list(ctx: typer.Context) -> None:
    """List the job definitions fcgtainer can find."""
    if ctx.invoked_subcommand:
        return
    from fcgtainer.cli import render

    render.jobs_table(out)


@jobs_app.command("show")
def jobs_show(name: Annotated[str, typer.Argument(help="Job name or path.")]) -> None:
    """Show a job definition as loaded, with its matrix size."""
    from fcgtainer.cli import render
    from fcgtainer.config.job import load_job

    job = load_job(name)
    render.dump(out, job.model_dump(mode="json") | {"tasks": _count(job.axes())})


def _count(axes: Mapping[str, Sequence[object]]) -> int:
    total = 1
    for values in axes.values():
        total *= len(values)
    return total
