"""CVMFS on this host: probe repositories without ever hanging, find cvmfsexec.

A hung automount blocks every process that touches it, possibly in uninterruptible sleep:
the probe runs ``ls`` in its own process, polls it, and on timeout kills it and walks away
without waiting for it (``subprocess.run(timeout=...)`` would wait for the killed child).
The same decisions are taken on the compute node by the launcher in
:mod:`fcgtainer.container`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Literal

from fcgtainer.site import Site

ProbeState = Literal["ok", "missing", "hung"]
Mode = Literal["host", "cvmfsexec", "none"]


def probe(path: str, timeout: float) -> ProbeState:
    """List ``path`` in a killable child: ``ok``, ``missing`` or ``hung`` after ``timeout`` s."""
    try:
        child = subprocess.Popen(
            ["ls", path.rstrip("/") + "/"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return "missing"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = child.poll()
        if code is not None:
            return "ok" if code == 0 else "missing"
        time.sleep(0.02)
    child.kill()
    return "hung"


def repositories(site: Site, wanted: tuple[str, ...] = ()) -> dict[str, Mode]:
    """The repositories to look at: the site's (default ``sft.cern.ch``) plus ``wanted``."""
    repos: dict[str, Mode] = dict(site.cvmfs.repositories) or {"sft.cern.ch": "host"}
    for repo in wanted:
        repos.setdefault(repo, "host")
    return repos


def find_cvmfsexec(site: Site) -> str | None:
    """The site's cvmfsexec, if it exists here (``~`` and ``$VAR`` expanded)."""
    path = os.path.expandvars(os.path.expanduser(site.cvmfs.cvmfsexec.path))
    if "/" in path:
        return path if os.access(path, os.X_OK) and Path(path).is_file() else None
    return shutil.which(path)


def smoke_test(cvmfsexec: str, repos: list[str], timeout: float = 120.0) -> tuple[bool, str]:
    """``cvmfsexec REPO... -- /bin/true``: does it mount them? Returns (ok, last output)."""
    from fcgtainer import proc
    from fcgtainer.errors import CommandError

    try:
        proc.run([cvmfsexec, *repos, "--", "/bin/true"], timeout=timeout)
    except CommandError as exc:
        return False, exc.message
    return True, ""
