"""CVMFS on this host: probe repositories without ever hanging, find cvmfsexec.

A hung automount blocks every process that touches it, possibly in uninterruptible sleep:
the probe runs ``ls`` in its own process, polls it, and on timeout kills it and walks away
without waiting for it (``subprocess.run(timeout=...)`` would wait for the killed child).
The checks are the node-side ones of :mod:`fcgtainer.node` (``lib.sh``, through
``probe.sh``): the launcher takes the same decisions on the compute node.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Literal

from fcgtainer import node
from fcgtainer.config.site import Site

ProbeState = Literal["ok", "missing", "hung"]
Mode = Literal["host", "cvmfsexec", "auto", "none"]


def probe(path: str, timeout: float) -> ProbeState:
    """List ``path`` as the launcher does (``probe.sh``): ``ok``, ``missing`` or ``hung``."""
    answer = node.check("cvmfs", path.rstrip("/") or "/", str(max(1, round(timeout * 10))))
    states: dict[str, ProbeState] = {"ok": "ok", "missing": "missing", "hung": "hung"}
    return states.get(answer, "missing")


def repositories(site: Site, wanted: tuple[str, ...] = ()) -> dict[str, Mode]:
    """The repositories to look at: the site's (default ``sft.cern.ch``) plus ``wanted``."""
    repos: dict[str, Mode] = dict(site.cvmfs.repositories) or {"sft.cern.ch": "host"}
    for repo in wanted:
        repos.setdefault(repo, "auto")
    return repos


def find_cvmfsexec(site: Site) -> str | None:
    """The site's cvmfsexec, if it exists here (``~`` and ``$VAR`` expanded)."""
    path = os.path.expandvars(os.path.expanduser(site.cvmfs.cvmfsexec.path))
    if "/" in path:
        return path if os.access(path, os.X_OK) and Path(path).is_file() else None
    return shutil.which(path)
