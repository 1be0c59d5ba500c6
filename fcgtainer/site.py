"""Site profiles: what a cluster offers and how to talk to it (``sites/*.yaml``)."""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from fcgtainer.config import (
    Bind,
    Resources,
    Strict,
    read_yaml,
    search_dirs,
    validate,
)
from fcgtainer.errors import ConfigError, NotFoundError

# Flags fcgtainer renders itself: an extra flag may not set them behind its back.
SLURM_MANAGED_FLAGS = frozenset(
    {
        "--array",
        "-a",
        "--job-name",
        "-J",
        "--output",
        "-o",
        "--error",
        "-e",
        "--cpus-per-task",
        "-c",
        "--mem",
        "--time",
        "-t",
        "--partition",
        "-p",
        "--account",
        "-A",
        "--qos",
        "-q",
        "--constraint",
        "-C",
        "--gres",
        "--gpus",
        "-G",
        "--requeue",
        "--no-requeue",
        "--open-mode",
        "--signal",
        "--export",
        "--comment",
        "--parsable",
        "--wrap",
        "--chdir",
        "-D",
    }
)
HTCONDOR_MANAGED_KEYS = frozenset(
    {
        "executable",
        "arguments",
        "universe",
        "output",
        "error",
        "log",
        "request_cpus",
        "request_memory",
        "request_gpus",
        "max_retries",
        "checkpoint_exit_code",
        "on_exit_hold",
        "periodic_release",
        "getenv",
        "environment",
        "queue",
        "+jobflavour",
        "+maxruntime",
        "requirements",
        "should_transfer_files",
        "transfer_input_files",
        "when_to_transfer_output",
        "initialdir",
        "+fcgtainerrun",
        "+fcgtainertask",
        "batch_name",
        "kill_sig",
        "retry_until",
        "on_exit_hold_reason",
        "transfer_executable",
    }
)
_UNSET_VARIABLE = re.compile(r"\$(\{[^}]*\}|[A-Za-z_]\w*)")  # what expandvars left alone
DEFAULT_ENV_ALLOW = ("LANG", "LC_ALL", "TZ", "TERM", "OMP_NUM_THREADS")


class SlurmOptions(Strict):
    """How jobs are asked for on a SLURM site."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpu_request: Literal["gres", "gpus"] = "gres"
    gres_name: str = "gpu"
    array_limit: int | None = Field(default=None, ge=1)
    signal_margin: int = Field(default=300, ge=10)
    extra_flags: tuple[str, ...] = ()
    sbatch: str = "sbatch"
    squeue: str = "squeue"
    sacct: str = "sacct"
    scancel: str = "scancel"
    srun: str = "srun"

    @field_validator("extra_flags")
    @classmethod
    def _no_managed(cls, flags: tuple[str, ...]) -> tuple[str, ...]:
        for flag in flags:
            name = flag.split("=", 1)[0]
            if name in SLURM_MANAGED_FLAGS:
                raise ValueError(
                    f"{name} is set by fcgtainer itself; use the matching key "
                    "(partition, account, qos, constraint, resources...) instead"
                )
            if not flag.startswith("-"):
                raise ValueError(f"{flag!r} is not a flag (flags start with -)")
        return flags


class HTCondorOptions(Strict):
    """How jobs are asked for on an HTCondor site."""

    job_flavour: str | None = None
    max_runtime: int | None = Field(default=None, ge=60)
    requirements: str | None = None
    schedd: str | None = None
    collector: str | None = None
    file_transfer: bool = False
    max_retries: int = Field(default=3, ge=0)
    extra: dict[str, str] = Field(default_factory=dict)

    @field_validator("extra")
    @classmethod
    def _no_managed(cls, extra: dict[str, str]) -> dict[str, str]:
        for key in extra:
            if key.lower() in HTCONDOR_MANAGED_KEYS:
                raise ValueError(f"{key} is set by fcgtainer itself; use the matching site key")
        return extra


class LocalOptions(Strict):
    """The local backend: a bounded pool on this machine."""

    max_parallel: int | None = Field(default=None, ge=1)


class ApptainerOptions(Strict):
    """Where Apptainer is and how to run it on this site."""

    binary: str = "apptainer"
    modules: tuple[str, ...] = ()
    cache_dir: str | None = None
    images_dir: str | None = None
    binds: tuple[Bind, ...] = ()
    unpack: Literal["auto", "never", "always"] = "auto"


class CvmfsexecOptions(Strict):
    """cvmfsexec, for hosts without /cvmfs."""

    path: str = "cvmfsexec"
    cache: str | None = None
    proxy: str | None = None


class CvmfsOptions(Strict):
    """How each CVMFS repository reaches the job."""

    repositories: dict[str, Literal["host", "cvmfsexec", "none"]] = Field(default_factory=dict)
    cvmfsexec: CvmfsexecOptions = CvmfsexecOptions()
    probe_timeout: float = Field(default=5.0, gt=0)


class GpuOptions(Strict):
    """The GPUs a compute node has."""

    count: int = Field(default=0, ge=0)
    type: str | None = None


class EnvOptions(Strict):
    """The only environment a job gets: an allow-list plus fixed values."""

    allow: tuple[str, ...] = DEFAULT_ENV_ALLOW
    set: dict[str, str] = Field(default_factory=dict)


class Site(Strict):
    """A site profile as loaded from ``sites/<name>.yaml``."""

    name: str = "local"
    description: str = ""
    scheduler: Literal["local", "slurm", "htcondor"] = "local"
    runtime: Literal["auto", "apptainer", "native"] = "auto"
    runs_dir: str = "~/fcgtainer-runs"
    scratch: str | None = None
    internet: bool = True
    resources: Resources = Resources()
    slurm: SlurmOptions = SlurmOptions()
    htcondor: HTCondorOptions = HTCondorOptions()
    local: LocalOptions = LocalOptions()
    apptainer: ApptainerOptions = ApptainerOptions()
    cvmfs: CvmfsOptions = CvmfsOptions()
    gpus: GpuOptions = GpuOptions()
    env: EnvOptions = EnvOptions()
    job_inputs: dict[str, dict[str, str]] = Field(default_factory=dict)
    source: str = Field(default="(built in)", exclude=True)

    @cached_property
    def runs_path(self) -> Path:
        """Where this site's run directories live (a shared filesystem on a cluster)."""
        expanded = os.path.expandvars(os.path.expanduser(self.runs_dir))
        if _UNSET_VARIABLE.search(expanded):
            raise ConfigError(
                f"{self.source}: runs_dir: {self.runs_dir!r} names a variable that is not set here",
                "set it in your environment, or write the path out in the site profile",
            )
        return Path(expanded).absolute()


def site_dirs() -> list[Path]:
    """Directories searched for ``<name>.yaml``, first match wins."""
    return search_dirs("FCGTAINER_SITES", "sites")


def available_sites() -> dict[str, Path]:
    """Every site profile found, by name."""
    found: dict[str, Path] = {}
    for directory in site_dirs():
        for path in sorted(directory.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def load_site(name_or_path: str) -> Site:
    """Load a site by name (searched in :func:`site_dirs`) or by path to a YAML file."""
    path = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")) or path.is_file():
        return load_site_file(path)
    sites = available_sites()
    if name_or_path in sites:
        return load_site_file(sites[name_or_path])
    if name_or_path == "local":
        return Site()
    known = ", ".join(sorted(sites)) or "none"
    raise NotFoundError(
        f"site {name_or_path!r}: no such site profile",
        f"known sites: {known}; or give a path to a YAML file",
    )


def load_site_file(path: Path) -> Site:
    """Load and validate one site profile file."""
    data = read_yaml(path)
    data.setdefault("name", path.stem)
    if "source" in data:
        raise ConfigError(f"{path}: source: unknown key", "remove it")
    site = validate(Site, data, str(path))
    return site.model_copy(update={"source": str(path)})
