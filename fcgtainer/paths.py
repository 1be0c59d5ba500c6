"""Where fcgtainer finds and keeps things: shipped files, the user's own, its state.

Site profiles and jobs are searched, first match wins, in:

1. the project directory: ``./sites``, ``./jobs`` (where the command runs);
2. the user's: ``$XDG_CONFIG_HOME/fcgtainer/{sites,jobs}`` (default ``~/.config``);
3. the directories of ``$FCGTAINER_SITES`` / ``$FCGTAINER_JOBS`` (``:``-separated);
4. the shipped ones: ``sites/``, ``jobs/`` of the checkout, or of the installed wheel
   (``fcgtainer/_shipped/``, with ``recipes/`` and ``Apptainer.def``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def shipped_root() -> Path:
    """The directory holding the shipped ``sites/``, ``jobs/``, ``recipes/`` and ``Apptainer.def``.

    An installed wheel carries them as package data in ``fcgtainer/_shipped``; a checkout
    (or an editable install of one) has them at its top level.
    """
    wheel = PACKAGE / "_shipped"
    return wheel if wheel.is_dir() else PACKAGE.parent


def config_home() -> Path:
    """``$XDG_CONFIG_HOME/fcgtainer``, default ``~/.config/fcgtainer``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "fcgtainer"


def state_dir() -> Path:
    """``$FCGTAINER_STATE_DIR``, else ``$XDG_STATE_HOME/fcgtainer``, else ``~/.local/state``."""
    explicit = os.environ.get("FCGTAINER_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "fcgtainer"


@dataclass(frozen=True)
class SearchDir:
    """One directory of a search path and where it comes from."""

    path: Path
    origin: str  # "project", "user", "$FCGTAINER_SITES", "shipped"


def search_path(kind: str) -> list[SearchDir]:
    """The existing directories searched for ``kind`` (``sites`` or ``jobs``), in order."""
    env_var = f"FCGTAINER_{kind.upper()}"
    candidates = [
        SearchDir(Path.cwd() / kind, "project"),
        SearchDir(config_home() / kind, "user"),
    ]
    candidates += [
        SearchDir(Path(p), f"${env_var}")
        for p in os.environ.get(env_var, "").split(os.pathsep)
        if p
    ]
    candidates.append(SearchDir(shipped_root() / kind, "shipped"))
    unique: list[SearchDir] = []
    seen: set[Path] = set()
    for candidate in candidates:
        if candidate.path.is_dir() and candidate.path.resolve() not in seen:
            seen.add(candidate.path.resolve())
            unique.append(candidate)
    return unique


def origin(path: Path, kind: str) -> str:
    """Which directory of :func:`search_path` a found file comes from (``project``...)."""
    resolved = path.resolve()
    for directory in search_path(kind):
        if resolved.is_relative_to(directory.path.resolve()):
            return directory.origin
    return "path"


def git_commit(root: Path | None = None) -> str | None:
    """The commit of the checkout fcgtainer runs from (or of ``root``), None outside one.

    Read from ``.git`` directly: build hosts and compute nodes often lack git.
    """
    git = (root or PACKAGE.parent) / ".git"
    try:
        if git.is_file():  # a worktree: "gitdir: PATH"
            text = git.read_text().strip()
            git = Path(text.removeprefix("gitdir: "))
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head or None
        ref = head.removeprefix("ref: ")
        for directory in (git, _common_dir(git)):
            loose = directory / ref
            if loose.is_file():
                return loose.read_text().strip()
        for line in (_common_dir(git) / "packed-refs").read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    except OSError:
        return None
    return None


def _common_dir(git: Path) -> Path:
    """A worktree's shared git directory (its ``commondir``), else ``git`` itself."""
    try:
        return (git / (git / "commondir").read_text().strip()).resolve()
    except OSError:
        return git
