"""``fcgtainer doctor``: what this host can do, each problem with its fix."""

from __future__ import annotations

import getpass
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fcgtainer import proc
from fcgtainer.errors import CommandError

Status = Literal["ok", "warn", "fail", "info"]


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def probe_path(path: str, timeout: float) -> Literal["ok", "missing", "hung"]:
    """Look at a path in a killable subprocess: a hung automount must not hang the CLI."""
    try:
        done = subprocess.run(["ls", "-d", path], capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return "hung"
    return "ok" if done.returncode == 0 else "missing"


def check_apptainer(binary: str) -> Check:
    """Apptainer's path and version."""
    path = shutil.which(binary)
    if path is None:
        return Check(
            "apptainer",
            "warn",
            f"{binary} not found",
            "install Apptainer or load its module; tasks run natively meanwhile",
        )
    try:
        version = proc.run([path, "--version"], timeout=20).stdout.strip()
    except CommandError as exc:
        return Check("apptainer", "fail", exc.message, "check the Apptainer installation")
    return Check("apptainer", "ok", f"{version} ({path})")


def check_userns() -> Check:
    """Unprivileged user namespaces (for --fakeroot builds and cvmfsexec)."""
    max_ns = Path("/proc/sys/user/max_user_namespaces")
    value = max_ns.read_text().strip() if max_ns.exists() else "?"
    clone = Path("/proc/sys/kernel/unprivileged_userns_clone")
    if value == "0" or (clone.exists() and clone.read_text().strip() == "0"):
        return Check(
            "user namespaces",
            "fail",
            f"max_user_namespaces={value}",
            "ask the admins to enable unprivileged user namespaces",
        )
    return Check("user namespaces", "ok", f"max_user_namespaces={value}")


def check_subuid() -> Check:
    """A subordinate uid range for --fakeroot."""
    user = getpass.getuser()
    for name in ("/etc/subuid", "/etc/subgid"):
        try:
            lines = Path(name).read_text().splitlines()
        except FileNotFoundError:
            lines = []
        if not any(line.split(":")[0] in (user, str(os.getuid())) for line in lines):
            return Check(
                "subuid/subgid",
                "warn",
                f"no entry for {user} in {name}",
                f"ask for one: `{user}:100000:65536` in /etc/subuid and /etc/subgid",
            )
    return Check("subuid/subgid", "ok", f"{user} has ranges")


def check_fuse() -> Check:
    """/dev/fuse usable: SIFs mount directly, cvmfsexec can work."""
    fuse = Path("/dev/fuse")
    if not fuse.exists():
        return Check(
            "/dev/fuse",
            "warn",
            "absent",
            "images will be unpacked to scratch; cvmfsexec cannot run",
        )
    if os.access(fuse, os.R_OK | os.W_OK):
        return Check("/dev/fuse", "ok", "usable")
    return Check(
        "/dev/fuse",
        "warn",
        "not usable by this user",
        "images will be unpacked once per node to scratch; cvmfsexec cannot run",
    )


def check_tool(name: str, what: str, fix: str) -> Check:
    """A command on PATH."""
    path = shutil.which(name)
    if path:
        return Check(name, "ok", f"{what}: {path}")
    return Check(name, "info", f"{what}: not found", fix)


def check_gpus() -> Check:
    """NVIDIA GPUs visible to this host."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return Check("GPUs", "info", "nvidia-smi not found: no NVIDIA GPU here")
    try:
        names = proc.run([smi, "--query-gpu=name", "--format=csv,noheader"], timeout=20).stdout
    except CommandError as exc:
        return Check("GPUs", "warn", exc.message, "check the NVIDIA driver")
    return Check("GPUs", "ok", ", ".join(names.split("\n")).strip(", "))


def check_htcondor_bindings() -> Check:
    """The htcondor2 Python bindings (only HTCondor sites need them)."""
    if importlib.util.find_spec("htcondor2") is None:
        return Check(
            "htcondor2 bindings",
            "info",
            "not installed",
            "pip install 'fcgtainer[htcondor]' (same version as the pool)",
        )
    return Check("htcondor2 bindings", "ok", "importable")


def run_checks(site_ref: str | None) -> list[Check]:
    """Every check, plus the site's CVMFS repositories when a site is given."""
    from fcgtainer.site import Site, load_site

    site = load_site(site_ref) if site_ref else Site()
    checks = [
        check_apptainer(site.apptainer.binary),
        check_userns(),
        check_subuid(),
        check_fuse(),
        check_tool(
            "squashfuse",
            "mount a SIF without unpacking",
            "install squashfuse, or images are unpacked to scratch",
        ),
        check_tool(site.slurm.sbatch, "SLURM", "only needed on SLURM sites"),
        check_tool("condor_submit", "HTCondor", "only needed on HTCondor sites"),
        check_htcondor_bindings(),
        check_gpus(),
    ]
    repos = site.cvmfs.repositories or {"sft.cern.ch": "host"}
    for repo, mode in repos.items():
        state = probe_path(f"/cvmfs/{repo}", site.cvmfs.probe_timeout)
        if state == "ok":
            checks.append(Check(f"/cvmfs/{repo}", "ok", f"mounted (site mode: {mode})"))
        elif state == "hung":
            checks.append(
                Check(
                    f"/cvmfs/{repo}",
                    "fail",
                    f"no answer in {site.cvmfs.probe_timeout:.0f} s (hung automount)",
                    "ask the admins to check autofs/cvmfs on this node",
                )
            )
        else:
            fix = "" if mode != "host" else "set the repository to cvmfsexec in the site profile"
            status: Status = "warn" if mode == "host" else "info"
            checks.append(Check(f"/cvmfs/{repo}", status, f"not mounted (site mode: {mode})", fix))
    return checks
