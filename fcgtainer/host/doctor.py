"""``fcgtainer doctor``: what this host can do, each problem with its fix."""

from __future__ import annotations

import getpass
import importlib.util
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fcgtainer import node, proc
from fcgtainer.config.site import Site
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
    from fcgtainer.host.cvmfs import probe

    return probe(path, timeout)


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
    numbers = re.findall(r"\d+", version)
    if len(numbers) >= 2 and (int(numbers[0]), int(numbers[1])) < (1, 1):
        return Check(
            "apptainer",
            "fail",
            f"{version} ({path})",
            "fcgtainer needs Apptainer >= 1.1 (--no-eval); load a newer module",
        )
    return Check("apptainer", "ok", f"{version} ({path})")


def check_userns(proc_sys: Path = Path("/proc/sys")) -> Check:
    """Unprivileged user namespaces (for --fakeroot builds and cvmfsexec)."""
    max_ns = proc_sys / "user" / "max_user_namespaces"
    value = max_ns.read_text().strip() if max_ns.exists() else "?"
    clone = proc_sys / "kernel" / "unprivileged_userns_clone"
    if value == "0" or (clone.exists() and clone.read_text().strip() == "0"):
        return Check(
            "user namespaces",
            "fail",
            f"max_user_namespaces={value}",
            "ask the admins to enable unprivileged user namespaces",
        )
    return Check("user namespaces", "ok", f"max_user_namespaces={value}")


def check_subuid(etc: Path = Path("/etc")) -> Check:
    """A subordinate uid range for --fakeroot."""
    user = getpass.getuser()
    for name in (str(etc / "subuid"), str(etc / "subgid")):
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
    """/dev/fuse usable: SIFs mount directly, cvmfsexec can work (``lib.sh`` ``fcg_fuse``)."""
    state = node.check("fuse")
    if state == "ok":
        return Check("/dev/fuse", "ok", "usable")
    if state == "closed":
        return Check(
            "/dev/fuse",
            "warn",
            "not usable by this user",
            "images will be unpacked once per node to scratch; cvmfsexec cannot run",
        )
    return Check(
        "/dev/fuse",
        "warn",
        "absent",
        "images will be unpacked to scratch; cvmfsexec cannot run",
    )


def check_image_mode(unpack: str = "auto") -> Check:
    """How tasks will see the image: the launcher's own choice (``lib.sh`` ``fcg_image_mode``)."""
    choice = node.check("image-mode", unpack)
    squash = node.check("squashfuse")
    if choice.startswith("unpack"):
        why = choice.removeprefix("unpack").strip() or "unknown reason"
        return Check(
            "image mode",
            "info",
            f"unpacked once per node into scratch ({why})",
            "the first task on a node unpacks the image (minutes for GB images); "
            "later tasks reuse it",
        )
    if unpack == "never" and not (node.check("fuse") == "ok" and squash):
        return Check(
            "image mode",
            "warn",
            "SIF mounted, but FUSE/squashfuse are not usable: Apptainer unpacks on every exec",
            "set apptainer.unpack: auto in the site profile",
        )
    return Check("image mode", "ok", f"SIF mounted with FUSE ({squash})")


def check_tool(name: str, what: str, fix: str) -> Check:
    """A command on PATH."""
    path = shutil.which(name)
    if path:
        return Check(name, "ok", f"{what}: {path}")
    return Check(name, "info", f"{what}: not found", fix)


def check_gpus() -> Check:
    """NVIDIA GPUs visible here, as the in-container check sees them (``lib.sh`` ``fcg_gpus``)."""
    if shutil.which("nvidia-smi") is None:
        return Check("GPUs", "info", "nvidia-smi not found: no NVIDIA GPU here")
    gpus = node.check("gpus")
    if not gpus:
        return Check("GPUs", "warn", "nvidia-smi lists no GPU", "check the NVIDIA driver")
    return Check("GPUs", "ok", "; ".join(gpus.splitlines()))


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


MAX_JOBS_PER_SUBMISSION_DEFAULT = 20_000  # HTCondor's default


def check_htcondor_limits(site: Site) -> Check:
    """The pool's ``MAX_JOBS_PER_SUBMISSION`` against the site's factory threshold."""
    tool = shutil.which("condor_config_val")
    if tool is None:
        return Check("MAX_JOBS_PER_SUBMISSION", "info", "condor_config_val not found")
    try:
        done = proc.run([tool, "MAX_JOBS_PER_SUBMISSION"], timeout=20, check=False)
    except CommandError as exc:
        return Check("MAX_JOBS_PER_SUBMISSION", "info", exc.message)
    text = done.stdout.strip()
    if done.returncode == 0 and text.isdigit():
        limit, where = int(text), "set by the pool"
    else:  # "Not defined: ...": the schedd uses its default
        limit, where = MAX_JOBS_PER_SUBMISSION_DEFAULT, "HTCondor's default"
    opts = site.htcondor
    detail = f"{limit} ({where})"
    if opts.factory_above is None or opts.factory_above >= limit:
        return Check(
            "MAX_JOBS_PER_SUBMISSION",
            "warn",
            f"{detail}; factory_above: {opts.factory_above}",
            f"a step of more than {limit} tasks is refused: set htcondor.factory_above "
            f"below {limit} in the site profile (late materialisation)",
        )
    limits = ", ".join(
        f"{key} {value}"
        for key, value in (("max_idle", opts.max_idle), ("max_materialize", opts.max_materialize))
        if value is not None
    )
    return Check(
        "MAX_JOBS_PER_SUBMISSION",
        "ok",
        f"{detail}; steps of more than {opts.factory_above} tasks go as factories ({limits})",
    )


def host_driver() -> str | None:
    """The NVIDIA driver version of this host, or None when no GPU driver is visible."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        done = proc.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], timeout=20)
    except CommandError:
        return None
    first = done.stdout.strip().splitlines()
    return first[0].strip() if first else None


def run_checks(site_ref: str | None) -> list[Check]:
    """Every check, plus the site's CVMFS repositories when a site is given."""
    from fcgtainer.config.site import Site, load_site

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
        check_image_mode(site.apptainer.unpack),
    ]
    needed = site_ref is not None
    if site_ref is None or site.scheduler == "slurm":
        for tool in (site.slurm.sbatch, site.slurm.squeue, site.slurm.sacct, site.slurm.scancel):
            checks.append(required(check_tool(tool, "SLURM", "only needed on SLURM sites"), needed))
    if site_ref is None or site.scheduler == "htcondor":
        for tool in ("condor_submit", "condor_q", "condor_rm"):
            check = check_tool(tool, "HTCondor", "only needed on HTCondor sites")
            checks.append(required(check, needed))
        checks.append(required(check_htcondor_bindings(), needed))
        if needed:
            checks.append(check_htcondor_limits(site))
    checks.append(check_gpus())
    if site.gpus.count and checks[-1].status != "ok":
        checks[-1] = Check(
            "GPUs",
            "warn",
            checks[-1].detail,
            "GPU tasks exit 86 where no GPU is visible; run doctor on a compute node",
        )
    checks += check_cvmfs(site)
    return checks


def required(check: Check, needed: bool) -> Check:
    """A missing tool the site's scheduler needs is a failure, not a note."""
    if not needed or check.status != "info":
        return check
    return Check(
        check.name,
        "fail",
        check.detail,
        "run on the site's login node, or load the scheduler's module / install it",
    )


def check_cvmfs(site: Site) -> list[Check]:
    """Each CVMFS repository: mounted, missing (and cvmfsexec usable?), or hung."""
    from fcgtainer.host.cvmfs import find_cvmfsexec, repositories

    checks = []
    missing = []
    for repo, mode in repositories(site).items():
        if mode == "none":
            checks.append(Check(f"/cvmfs/{repo}", "info", "not used (site mode: none)"))
            continue
        state = probe_path(f"/cvmfs/{repo}", site.cvmfs.probe_timeout)
        if state == "ok":
            checks.append(Check(f"/cvmfs/{repo}", "ok", f"mounted (site mode: {mode})"))
        elif state == "hung":
            checks.append(
                Check(
                    f"/cvmfs/{repo}",
                    "fail",
                    f"no answer in {site.cvmfs.probe_timeout:g} s (hung automount)",
                    "ask the admins to check autofs/cvmfs on this node",
                )
            )
        elif mode == "host":
            checks.append(
                Check(
                    f"/cvmfs/{repo}",
                    "fail",
                    "not mounted (site mode: host)",
                    "tasks needing it exit 87 here: mount it, or set its mode to cvmfsexec "
                    "or auto in the site profile",
                )
            )
        else:
            missing.append(repo)
            checks.append(Check(f"/cvmfs/{repo}", "info", f"not mounted (site mode: {mode})"))
    if missing:
        exe = find_cvmfsexec(site)
        if exe is None:
            checks.append(
                Check(
                    "cvmfsexec",
                    "warn",
                    f"{site.cvmfs.cvmfsexec.path}: not found",
                    "tasks needing CVMFS exit 87 here: git clone "
                    "https://github.com/cvmfs/cvmfsexec && ./makedist default",
                )
            )
        else:
            checks.append(Check("cvmfsexec", "ok", f"{exe} (smoke-tested by each task)"))
    return checks
