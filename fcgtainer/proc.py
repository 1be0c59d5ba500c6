"""The one way fcgtainer runs an external command: an argv list, never a shell string."""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from fcgtainer.errors import CommandError

log = logging.getLogger("fcgtainer")


@dataclass(frozen=True)
class Completed:
    """What a finished command said."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class CommandTimeout(CommandError):
    """The command did not finish in time (it may still have had an effect)."""


def run(
    argv: Sequence[str],
    *,
    timeout: float = 120.0,
    check: bool = True,
    stdin: str | None = None,
    cwd: str | None = None,
) -> Completed:
    """Run ``argv`` and capture its output.

    Raises
    ------
    CommandError
        Non-zero exit (with ``check``), or the program is missing.
    CommandTimeout
        No answer within ``timeout`` seconds; the process is killed.
    """
    log.debug("run: %s", shlex.join(argv))
    try:
        proc = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
        )
    except FileNotFoundError:
        raise CommandError(
            argv,
            127,
            stderr=f"{argv[0]}: command not found",
            hint=f"install {argv[0]} or set its path in the site profile",
        ) from None
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        raise CommandTimeout(
            argv, -1, stdout=out, stderr=f"timed out after {timeout:.0f} s"
        ) from None
    done = Completed(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stdout, proc.stderr)
    return done
