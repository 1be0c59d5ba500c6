"""The command line: typer commands that parse, call one function and render with rich.

``app`` holds the commands; importing this package registers every command module on it,
in the order ``--help`` lists them (runs, host, images; then the sites and jobs groups).
"""

# ruff: noqa: I001  (the import order is the order of the commands in --help)
from fcgtainer.cli import runs as _runs  # noqa: F401  (submit, status, logs, cancel, resubmit)
from fcgtainer.cli import host as _host  # noqa: F401  (doctor)
from fcgtainer.cli import images as _images  # noqa: F401  (build, images, shell)
from fcgtainer.cli import catalog as _catalog  # noqa: F401  (sites, jobs)
from fcgtainer.cli.app import app, main

__all__ = ["app", "main"]
