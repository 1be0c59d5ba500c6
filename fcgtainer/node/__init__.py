"""The shell that runs on compute nodes, shipped as files checked by shellcheck.

=============  =====================================================================
``codes.sh``   the exit codes of the task contract (same numbers as :mod:`fcgtainer.states`)
``lib.sh``     every node-side check once: CVMFS probe, cvmfsexec smoke test, FUSE or
               unpack, GPU check, LCG view, signal forwarding
``launch.sh``  runs a task (or ``fcgtainer shell``) in Apptainer: scratch, image, CVMFS, env
``inner.sh``   inside the container, before the payload: GPU check and LCG view
``wrapper.sh`` the job wrapper every backend runs: argv file, signals, exit-code marker
``probe.sh``   the same checks for ``fcgtainer doctor``
``run.sh``     the runscript of fcgtainer images (installed with the library)
``env.sh``     a native task's secrets: exported from their 0600 file, never on a command line
``upstream.sh`` a campaign task's check of its upstream tasks' markers (exit 88 if one failed)
``table.sh``   a task's spec, argv and bounds copied from the run's task table when it starts
``report.sh``  a SLURM campaign's last job: the run's report once every task has ended
``bundle.sh``  the tasks of one bundle (``bundle: N``) in turn, in one scheduler job and
               one container start (an Apptainer instance the launcher starts and joins)
=============  =====================================================================

Python passes values to these scripts as arguments, never as shell text. A run directory
gets its own copy (:func:`install`), so queued tasks keep the scripts they were planned
with and compute nodes need no fcgtainer installation.
"""

from __future__ import annotations

import os
import subprocess
from importlib import resources
from pathlib import Path

SCRIPTS = (
    "codes.sh",
    "lib.sh",
    "launch.sh",
    "inner.sh",
    "probe.sh",
    "wrapper.sh",
    "run.sh",
    "env.sh",
    "upstream.sh",
    "table.sh",
    "report.sh",
    "bundle.sh",
)


def source_dir() -> Path:
    """Where the scripts are shipped with the package."""
    return Path(str(resources.files(__name__)))


def launcher(run_dir: Path) -> str:
    """The launcher's path in a run directory."""
    return str(run_dir / "node" / "launch.sh")


def install(run_dir: Path, mode: int = 0o700) -> None:
    """Copy the node scripts into ``RUN_DIR/node/`` and the wrapper to ``RUN_DIR/wrapper.sh``.

    ``mode`` is that of the run directory (0700, or 0750 when a site shares runs with its
    group): what the wrapper executes is never writable by anyone else.
    """
    target = run_dir / "node"
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target, mode)
    source = source_dir()
    for name in SCRIPTS:
        _atomic_copy(source / name, target / name, mode)
    _atomic_copy(source / "wrapper.sh", run_dir / "wrapper.sh", mode)


def _atomic_copy(source: Path, target: Path, mode: int) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
    try:
        os.fchmod(fd, mode)
        os.write(fd, source.read_bytes())
    finally:
        os.close(fd)
    os.replace(tmp, target)


def check(*args: str) -> str:
    """One answer of ``probe.sh`` (the node-side checks, run on this host), stripped.

    ``probe.sh`` kills a hung listing itself and never waits for it; the timeout here only
    bounds a script that misbehaves.
    """
    try:
        done = subprocess.run(
            ["/bin/sh", str(source_dir() / "probe.sh"), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()
