"""Site profiles: what a cluster offers and how to talk to it (``sites/*.yaml``)."""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from fcgtainer.config.loader import (
    Bind,
    Resources,
    Strict,
    check_name,
    read_yaml,
    validate,
)
from fcgtainer.errors import ConfigError, NotFoundError
from fcgtainer.paths import search_path

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
        "max_idle",
        "max_materialize",
        "materialize_max_idle",
    }
)
_UNSET_VARIABLE = re.compile(r"\$(\{[^}]*\}|[A-Za-z_]\w*)")  # what expandvars left alone
DEFAULT_ENV_ALLOW = ("LANG", "LC_ALL", "TZ", "TERM", "OMP_NUM_THREADS")


class SlurmLimits(Strict):
    """Size limits of a SLURM site, when lower than what ``scontrol``/``sacctmgr`` report.

    Each is optional; the lower of this value and SLURM's own wins (``doctor`` shows both).
    """

    max_array_size: int | None = Field(default=None, ge=2)
    max_job_count: int | None = Field(default=None, ge=1)
    max_submit_jobs: int | None = Field(default=None, ge=1)


class SlurmOptions(Strict):
    """How jobs are asked for on a SLURM site.

    ``array_limit`` is the ``%N`` throttle of every array (tasks running at once);
    ``limits`` lowers the size limits SLURM reports (docs/scale.md); ``feed_every`` is how
    often the feeder of a run larger than the queue tries to submit its waiting tasks.
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpu_request: Literal["gres", "gpus"] = "gres"
    gres_name: str = "gpu"
    array_limit: int | None = Field(default=None, ge=1)
    signal_margin: int = Field(default=300, ge=10)
    limits: SlurmLimits = SlurmLimits()
    feed_every: float = Field(default=60.0, gt=0, le=3600)  # s between a feeder's rounds
    extra_flags: tuple[str, ...] = ()
    sbatch: str = "sbatch"
    squeue: str = "squeue"
    sacct: str = "sacct"
    scancel: str = "scancel"
    srun: str = "srun"
    scontrol: str = "scontrol"
    sacctmgr: str = "sacctmgr"

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


# CERN HTCondor's JobFlavour: the runtime each one grants, in seconds
JOB_FLAVOURS = {
    "espresso": 20 * 60,
    "microcentury": 60 * 60,
    "longlunch": 2 * 3600,
    "workday": 8 * 3600,
    "tomorrow": 24 * 3600,
    "testmatch": 3 * 24 * 3600,
    "nextweek": 7 * 24 * 3600,
}


class HTCondorOptions(Strict):
    """How jobs are asked for on an HTCondor site."""

    job_flavour: str | None = None
    max_runtime: int | None = Field(default=None, ge=60)
    requirements: str | None = None
    schedd: str | None = None
    collector: str | None = None
    file_transfer: bool = False
    max_retries: int = Field(default=3, ge=0)
    # Late materialisation (a job factory): a submission of more tasks than factory_above
    # (null: never) keeps at most max_idle of them idle and max_materialize of them in the
    # queue; the schedd adds the others as room frees, past MAX_JOBS_PER_SUBMISSION.
    factory_above: int | None = Field(default=1000, ge=0)
    max_idle: int | None = Field(default=1000, ge=1)
    max_materialize: int | None = Field(default=None, ge=1)
    extra: dict[str, str] = Field(default_factory=dict)

    @property
    def granted_runtime(self) -> int | None:
        """Seconds the pool lets a job run (``max_runtime``, the ``job_flavour``'s), if known."""
        limits = [self.max_runtime, JOB_FLAVOURS.get(self.job_flavour or "")]
        known = [s for s in limits if s]
        return min(known) if known else None

    @model_validator(mode="after")
    def _factory_has_a_limit(self) -> HTCondorOptions:
        if self.factory_above is not None and self.max_idle is None and not self.max_materialize:
            raise ValueError(
                "factory_above is set but max_idle and max_materialize are both null: "
                "a factory needs one of them (or set factory_above: null)"
            )
        return self

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
    # Image distribution (docs/images.md): registries, pulled-image cache, signatures.
    image_refs: dict[str, str] = Field(default_factory=dict)
    plain_http_registries: tuple[str, ...] = ()
    pull_dir: str | None = None
    require_signed: bool = False
    trusted_keys: tuple[str, ...] = ()

    @field_validator("trusted_keys")
    @classmethod
    def _fingerprints(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for key in keys:
            clean = key.replace(" ", "").upper().removeprefix("0X")
            if not re.fullmatch(r"[0-9A-F]{40}", clean):
                raise ValueError(
                    f"{key!r} is not a PGP fingerprint (40 hex digits, as "
                    "`apptainer key list` prints it)"
                )
            out.append(clean)
        return tuple(out)


class CvmfsexecOptions(Strict):
    """cvmfsexec, for hosts without /cvmfs.

    Its proxy (``CVMFS_HTTP_PROXY``) is part of the cvmfsexec distribution, in
    ``dist/etc/cvmfs/default.local``: cvmfsexec reads no proxy from its environment.
    """

    path: str = "cvmfsexec"
    cache: str | None = None


class CvmfsOptions(Strict):
    """How each CVMFS repository reaches the job.

    ``host``: only the node's own /cvmfs (missing -> exit 87); ``cvmfsexec``: always mounted
    with cvmfsexec; ``auto`` (a repository the site does not list): the node's /cvmfs when
    it answers, else cvmfsexec; ``none``: not used.
    """

    repositories: dict[str, Literal["host", "cvmfsexec", "auto", "none"]] = Field(
        default_factory=dict
    )
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
    payload: Literal["image", "checkout"] = "image"
    runs_dir: str = "~/fcgtainer-runs"
    max_tasks: int = Field(default=100_000, ge=1)
    bundle: int = Field(default=1, ge=1, le=10_000)  # tasks per scheduler job, unless the job says
    scratch: str | None = None
    share_group: bool = False
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

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)

    @cached_property
    def runs_path(self) -> Path:
        """Where this site's run directories live (a shared filesystem on a cluster)."""
        expanded = os.path.expandvars(os.path.expanduser(self.runs_dir))
        if _UNSET_VARIABLE.search(expanded):
            raise ConfigError(
                f"{self.source}: runs_dir: {self.runs_dir!r} names a variable that is not set here",
                "set it in your environment, or write the path out in the site profile",
            )
        path = Path(expanded)
        if not path.is_absolute():
            raise ConfigError(
                f"{self.source}: runs_dir: {self.runs_dir!r} is relative",
                "write an absolute path (a relative one is taken from the site file's "
                "directory when the profile is loaded from a file)",
            )
        if path.resolve() == Path("/"):
            raise ConfigError(
                f"{self.source}: runs_dir: {self.runs_dir!r} is the root directory",
                "give a directory of your own, e.g. ~/fcgtainer-runs",
            )
        return path


def site_dirs() -> list[Path]:
    """Directories searched for ``<name>.yaml``, first match wins (:mod:`fcgtainer.paths`)."""
    return [d.path for d in search_path("sites")]


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
    site = site.model_copy(update={"source": str(path)})
    # resolved once, here: a relative runs_dir is relative to the site file, not to wherever
    # a later `status` or `resubmit` happens to run; the manifest records the absolute path
    expanded = os.path.expandvars(os.path.expanduser(site.runs_dir))
    if _UNSET_VARIABLE.search(expanded):
        return site  # said when it is used: the variable may be set where the runs happen
    if not Path(expanded).is_absolute():
        absolute = (path.parent.absolute() / expanded).resolve()
        site = site.model_copy(update={"runs_dir": str(absolute)})
    site.runs_path  # noqa: B018 - checked now: `/` is a load error
    return site
