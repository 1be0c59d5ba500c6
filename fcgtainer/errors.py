"""One exception hierarchy; only the ``cli`` package turns it into an exit code."""

from __future__ import annotations

from collections.abc import Sequence


class FcgError(Exception):
    """Base of every error fcgtainer reports to a person.

    Parameters
    ----------
    message
        One line saying what is wrong (naming the file and key where there is one).
    hint
        One line saying how to fix it.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(FcgError):
    """Bad input: a site profile, a job definition, an override or a path."""

    exit_code = 2


class NotFoundError(ConfigError):
    """An unknown site, job, run or recipe."""


class PreflightError(FcgError):
    """A prerequisite on this host is missing (input directory, image, runtime)."""

    exit_code = 3


class CommandError(FcgError):
    """An external command failed; carries everything needed to understand why."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int,
        stdout: str = "",
        stderr: str = "",
        hint: str | None = None,
    ) -> None:
        import shlex

        detail = (stderr or stdout).strip().splitlines()
        last = detail[-1] if detail else "no output"
        super().__init__(f"`{shlex.join(argv)}` exited {returncode}: {last}", hint)
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class JournalError(FcgError):
    """The run journal cannot be read or written (corrupt, read-only, wrong owner)."""


class SubmitError(FcgError):
    """The scheduler refused or lost a submission."""
