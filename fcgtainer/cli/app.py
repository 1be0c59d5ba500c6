"""The ``fcgtainer`` typer app, its shared options and consoles, and the entry point.

The commands live beside it by concern (:mod:`~fcgtainer.cli.runs`,
:mod:`~fcgtainer.cli.catalog`, :mod:`~fcgtainer.cli.images`, :mod:`~fcgtainer.cli.host`);
each parses, calls one function of the layer below and renders with
:mod:`~fcgtainer.cli.render`. Heavy modules (pydantic models, backends, TensorFlow never)
are imported inside the commands, so ``fcgtainer --help`` starts as fast as typer itself.
"""

from __future__ import annotations

import signal
import sys
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


def main() -> None:
    """Console entry point: one red line plus a hint on error, tracebacks with --debug."""
    from fcgtainer.errors import FcgError

    signal.signal(signal.SIGTERM, _interrupted)  # like Ctrl-C: locks released, one line
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
        if exc.exit_code == 130:  # typer's KeyboardInterrupt (Ctrl-C, or SIGTERM here)
            _aborted()
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _aborted()
    except Exception as exc:  # click usage errors and the unexpected
        if _is_usage_error(exc):
            err.print(f"[bold red]error:[/] {_usage_message(exc)}", soft_wrap=True)
            sys.exit(2)
        if _debug:
            raise
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc}")
        err.print("[yellow]fix:[/] run again with --debug and report the traceback")
        sys.exit(1)
    if code == 130:  # typer returns Ctrl-C (or SIGTERM, above) as this exit code
        _aborted()
    sys.exit(code if isinstance(code, int) else 0)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _aborted() -> None:
    err.print("aborted; a run this left half submitted is resumed by the same `fcgtainer submit`")
    sys.exit(130)


def _is_usage_error(exc: BaseException) -> bool:
    """A click usage error, whichever click raised it (typer >= 0.2x bundles its own copy)."""
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__)


def _usage_message(exc: BaseException) -> str:
    """One line: what was wrong with the command line and where to read about it."""
    format_message = getattr(exc, "format_message", None)
    message = format_message() if callable(format_message) else str(exc)
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None) or "fcgtainer"
    return f"{' '.join(str(message).split())} (see `{path} --help`)"
