"""CLI commands for images: ``build``, ``images``, ``push``, ``pull`` and ``shell``.

They are registered on ``app``.

Only typer and rich are imported here; the image machinery is imported inside the commands.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from fcgtainer.cli.app import app, err, out

KeyIdxOpt = Annotated[
    int | None,
    typer.Option("--keyidx", help="Which private key signs (index from `apptainer key list -s`)."),
]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Print every line Apptainer prints.")
]


@app.command()
def build(
    recipe: Annotated[
        str | None,
        typer.Argument(
            help="Recipe name (standalone-debian, el9-cvmfs-cuda, standalone...) or a .def "
            "path; default: Apptainer.def (CentOS 7 + CVMFS + CUDA)."
        ),
    ] = None,
    verbose: VerboseOpt = False,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild the top layer even if it is cached.")
    ] = False,
    site: Annotated[
        str | None, typer.Option("--site", "-s", help="Use this site's Apptainer and images_dir.")
    ] = None,
    sign: Annotated[
        bool, typer.Option("--sign", help="Sign the image with your Apptainer PGP key.")
    ] = False,
    keyidx: KeyIdxOpt = None,
) -> None:
    """Build an image, layer by layer, skipping every layer whose content hash is built."""
    import time

    from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

    from fcgtainer.config.site import load_site
    from fcgtainer.images import build as builder

    profile = load_site(site) if site else None
    start = time.monotonic()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.fields[layer]}[/]"),
        TextColumn("{task.description}", markup=False),
        TimeElapsedColumn(),
        console=err,
        transient=not verbose,
        disable=verbose or not err.is_terminal,
    )
    tasks: dict[str, TaskID] = {}
    current: list[str] = []

    def on_layer(name: str, state: str) -> None:
        if state == "building":
            tasks[name] = progress.add_task("starting apptainer build", layer=name, total=None)
            current[:] = [name]
            if verbose or not err.is_terminal:
                err.print(f"[bold]building {escape(name)}[/] ...")
        elif state == "built":
            progress.update(tasks[name], description="done", completed=1, total=1)

    def on_line(line: str) -> None:
        if verbose:
            err.print(escape(line), soft_wrap=True, highlight=False)
        elif current:
            progress.update(tasks[current[0]], description=line.strip()[-100:])

    with progress:
        layers = builder.build(
            recipe, site=profile, force=force, on_line=on_line, on_layer=on_layer
        )
    from fcgtainer.cli.render import keyed_table

    table = keyed_table("layer", "", "seconds", "image", keep=3)
    for layer in layers:
        state = "[green]built[/]" if layer.built else "[dim]cached[/]"
        table.add_row(layer.recipe, state, f"{layer.seconds:.0f}", str(layer.image))
    out.print(table)
    out.print(f"image: {layers[-1].image}  ({time.monotonic() - start:.2f} s)")
    if sign:
        _sign(layers[-1].image, profile.apptainer.binary if profile else "apptainer", keyidx)


def _sign(image: Path, binary: str, keyidx: int | None) -> None:
    from fcgtainer.images import registry, signing

    before = signing.verify(image, binary=binary)
    if before.verified and before.signatures and keyidx is None:  # signing again changes bytes
        out.print(f"already signed: {image} by {', '.join(before.fingerprints)}")
        return
    done = signing.sign(image, binary=binary, keyidx=keyidx)
    registry.record_signature(image, done.fingerprints)
    out.print(f"signed: {image} by {', '.join(done.fingerprints)} ({', '.join(done.signers)})")


NoHttpsOpt = Annotated[
    bool,
    typer.Option("--no-https", help="Plain HTTP to the registry (a test or in-house registry)."),
]
RegistrySiteOpt = Annotated[
    str | None,
    typer.Option(
        "--site", "-s", help="Use this site's Apptainer, pull cache and plain_http_registries."
    ),
]


@app.command()
def push(
    image: Annotated[str, typer.Argument(help="A .sif path, or a recipe name (its newest build).")],
    ref: Annotated[str, typer.Argument(help="Where to: oras://host[:port]/namespace/name:tag.")],
    sign: Annotated[
        bool, typer.Option("--sign", help="Sign the image with your Apptainer PGP key first.")
    ] = False,
    keyidx: KeyIdxOpt = None,
    no_https: NoHttpsOpt = False,
    site: RegistrySiteOpt = None,
) -> None:
    """Push an image to an OCI registry (apptainer push oras://); record the digest."""
    from fcgtainer.config.site import load_site
    from fcgtainer.images import build as builder
    from fcgtainer.images import registry

    profile = load_site(site) if site else None
    path = Path(image)
    if not (image.endswith(".sif") or "/" in image):
        path = Path(builder.find_image(image, profile))
    registry.parse(ref)  # a bad reference fails before anything is signed
    if sign:
        _sign(path, profile.apptainer.binary if profile else "apptainer", keyidx)
    done = registry.push(path, ref, site=profile, no_https=no_https)
    out.print(f"pushed: {done.reference}")
    out.print(f"digest: {done.digest}")
    out.print(f"pinned: {done.pinned}")


@app.command()
def pull(
    ref: Annotated[
        str, typer.Argument(help="oras://host[:port]/namespace/name:tag or @sha256:...")
    ],
    no_https: NoHttpsOpt = False,
    site: RegistrySiteOpt = None,
) -> None:
    """Pull an image by reference into the pull cache, pinned by its digest; print its path."""
    from fcgtainer.config.site import load_site
    from fcgtainer.images import registry

    profile = load_site(site) if site else None
    path, resolved = registry.stage(ref, profile, no_https=no_https)
    err.print(f"[dim]{escape(str(resolved.reference))} -> {resolved.digest}[/]")
    out.print(str(path))


@app.command()
def images(
    site: Annotated[
        str | None, typer.Option("--site", "-s", help="List this site's images_dir.")
    ] = None,
) -> None:
    """List built images with their provenance (recipe hash, base, commit, host, time)."""
    from fcgtainer.config.site import load_site
    from fcgtainer.images import build as images_mod

    found = images_mod.list_images(load_site(site) if site else None)
    if not found:
        out.print(f"no images in {images_mod.images_dir()}; build one with `fcgtainer build`")
        return
    from fcgtainer.cli.render import keyed_table

    table = keyed_table("recipe", "hash", "built", "size", "commit", "apptainer", "image", keep=2)
    for meta in found:
        size = meta.get("size")
        table.add_row(
            ("* " if meta["latest"] else "  ") + str(meta.get("recipe", "?")),
            str(meta.get("recipe_hash", ""))[:12],
            str(meta.get("build_time", "")),
            f"{int(size) / 1e6:.0f} MB" if isinstance(size, int) else "-",
            str(meta.get("git_commit") or "-")[:10],
            str(meta.get("apptainer_version", "")).removeprefix("apptainer version "),
            str(meta["path"]),
        )
    out.print(table)
    out.print("[dim]* = the image `fcgtainer submit` uses for that recipe[/]")


@app.command(context_settings={"allow_interspersed_args": False})
def shell(
    site: Annotated[str, typer.Option("--site", "-s", help="Site profile name or YAML path.")],
    command: Annotated[
        list[str] | None,
        typer.Argument(help="Run this command instead of an interactive shell (after --)."),
    ] = None,
    image: Annotated[
        str | None, typer.Option(help="A .sif (or recipe name) instead of the job's image.")
    ] = None,
    job: Annotated[
        str | None, typer.Option("--job", "-j", help="Take binds, inputs and env from this job.")
    ] = None,
    on_node: Annotated[
        bool,
        typer.Option("--on-node", help="Ask the scheduler for an interactive allocation first."),
    ] = False,
) -> None:
    """Open a shell in the image with exactly the binds and environment of a task."""
    import shlex

    from fcgtainer.runs.shell import shell_command

    argv, plan = shell_command(site, image, job, command or [], on_node=on_node)
    os.chdir(plan.out_dir(0))
    err.print(
        f"[dim]fcgtainer shell: {escape(str(plan.image))} on {escape(plan.site.name)}, "
        f"binds and environment of task 0 of {escape(plan.job.name)}[/]"
    )
    if on_node and plan.site.scheduler == "htcondor":
        again = ["fcgtainer", "shell", "--site", site, *(["--job", job] if job else [])]
        err.print(f"[yellow]on the node, run:[/] {escape(shlex.join(again))}")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)
