"""CLI command for this host: ``doctor``."""

from __future__ import annotations

from typing import Annotated

import typer

from fcgtainer.cli.app import app, err, out


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
) -> None:
    """Report what this host can do: Apptainer, namespaces, FUSE, CVMFS, GPUs, schedulers.

    Exits 1 when a check fails.
    """
    from fcgtainer.cli import render
    from fcgtainer.host import doctor as doc

    checks = doc.run_checks(site)
    if job is not None:
        from fcgtainer.images.support import check_job_image

        checks += check_job_image(job, image)
    render.doctor_table(out, checks)
    failed = [c.name for c in checks if c.status == "fail"]
    if failed:
        err.print(f"[bold red]error:[/] required check(s) failed: {', '.join(failed)}")
        raise typer.Exit(1)
