"""CLI command for this host: ``doctor``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from fcgtainer.cli.app import app, err, out

if TYPE_CHECKING:
    from fcgtainer.host.doctor import Check


@app.command()
def doctor(
    site: Annotated[
        str | None, typer.Option("--site", "-s", help="Also check this site's needs.")
    ] = None,
    job: Annotated[
        str | None,
        typer.Option("--job", "-j", help="Also check this job in its image (view, Python, TF)."),
    ] = None,
    image: Annotated[
        str | None, typer.Option(help="With --job: this recipe or .sif instead of the job's.")
    ] = None,
    tasks: Annotated[
        int | None,
        typer.Option(
            "--tasks",
            min=1,
            help="With a SLURM --site: show how a run of this many tasks is split "
            "(default: the site's max_tasks).",
        ),
    ] = None,
) -> None:
    """Report what this host can do: Apptainer, namespaces, FUSE, CVMFS, GPUs, schedulers.

    With a SLURM site, also its size limits (MaxArraySize, MaxJobCount, MaxSubmitJobs) and
    what a run of ``--tasks`` tasks would be split into. Exits 1 when a check fails.
    """
    from fcgtainer.cli import render
    from fcgtainer.host import doctor as doc

    checks = doc.run_checks(site)
    if site is not None:
        checks += _slurm_limits(site, tasks)
    if job is not None:
        from fcgtainer.images.support import check_job_image

        checks += check_job_image(job, image)
    render.doctor_table(out, checks)
    failed = [c.name for c in checks if c.status == "fail"]
    if failed:
        err.print(f"[bold red]error:[/] required check(s) failed: {', '.join(failed)}")
        raise typer.Exit(1)


def _slurm_limits(site_ref: str, tasks: int | None) -> list[Check]:
    """The SLURM site's size limits and the split of a run, as doctor lines."""
    from fcgtainer.config.site import load_site
    from fcgtainer.host.doctor import Check

    site = load_site(site_ref)
    if site.scheduler != "slurm":
        return []
    from fcgtainer.backends import slurm_limits
    from fcgtainer.errors import CommandError

    limits = slurm_limits.query_limits(site)
    try:
        usage: slurm_limits.Usage | None = slurm_limits.query_usage(site)
    except CommandError:
        usage = None  # not on a login node: limits only
    lines = slurm_limits.report(limits, usage, tasks or site.max_tasks)
    return [Check(name, "info", detail) for name, detail in lines]
