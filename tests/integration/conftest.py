"""Fixtures for the integration tests: real Apptainer, SLURM and HTCondor.

These tests normally run inside the testbed (``tests/testbed/run-integration``, see
``tests/testbed/README.md``) as an ordinary user, but they only rely on the commands being
on PATH, so they also run on a real cluster's login node.

A test declares what it needs with the markers ``apptainer``, ``slurm`` and ``htcondor``,
and with ``fuse`` that its outcome depends on /dev/fuse (such tests run once per FUSE state).
When a component is missing, the test is skipped with the reason, except where the testbed
is required (``CI=true`` or ``FCG_REQUIRE_TESTBED=1``): there it fails, because a skipped
integration test in CI would hide that nothing was tested.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMPONENTS = ("apptainer", "slurm", "htcondor")
SMOKE_RECIPE = REPO / "recipes" / "debian-smoke.def"
USABLE_NODE_STATES = ("idle", "mix", "alloc", "comp")  # sinfo %t; not down, drain, fail


def testbed_required() -> bool:
    """Whether a missing component is a failure (CI, or FCG_REQUIRE_TESTBED=1)."""
    ci = os.environ.get("CI", "").lower() == "true"
    return ci or os.environ.get("FCG_REQUIRE_TESTBED", "") in ("1", "true")


def run(argv: Sequence[str], *, timeout: float = 60, check: bool = True,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run a command (argv list); on failure raise with its exit code and output."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, check=False)  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}"
        )
    return proc


def _probe(argv: Sequence[str]) -> str | None:
    """None if the command succeeds, else a one-line reason."""
    if shutil.which(argv[0]) is None:
        return f"{argv[0]} is not on PATH"
    try:
        proc = run(argv, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return f"{' '.join(argv)} timed out"
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        return f"{' '.join(argv)} exited {proc.returncode}: {err[-1] if err else ''}"
    return None


@functools.cache
def missing(component: str) -> str | None:
    """Why a component is unusable here, or None if it works (checked once per session)."""
    if component == "apptainer":
        return _probe(["apptainer", "--version"])
    if component == "slurm":
        reason = _probe(["scontrol", "ping"])
        states = run(["sinfo", "-h", "-o", "%t"], check=False).stdout.split()
        if reason is None and not any(s.startswith(USABLE_NODE_STATES) for s in states):
            reason = f"no usable SLURM node (sinfo states: {' '.join(states) or 'none'})"
        return reason
    if component == "htcondor":
        reason = _probe(["condor_status", "-af", "Name"])
        if reason is None and not run(["condor_status", "-af", "Name"]).stdout.strip():
            reason = "the HTCondor pool has no slot (condor_status)"
        return reason
    raise ValueError(f"unknown component {component!r}; known: {', '.join(COMPONENTS)}")


def require(component: str) -> None:
    """Fail (testbed required) or skip the current test if a component is missing."""
    reason = missing(component)
    if reason is None:
        return
    message = f"{component} unavailable: {reason}"
    if testbed_required():
        pytest.fail(f"{message} (CI=true or FCG_REQUIRE_TESTBED=1: the testbed must provide it)")
    pytest.skip(message)


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker of this directory (the tier markers live in pyproject.toml)."""
    config.addinivalue_line(
        "markers",
        "fuse: the behaviour depends on whether /dev/fuse is usable; run-integration runs"
        " these tests a second time with /dev/fuse closed",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Check the components named by the test's markers before it runs."""
    for component in COMPONENTS:
        if item.get_closest_marker(component) is not None:
            require(component)


# ---------------------------------------------------------------- the node


@dataclass(frozen=True)
class Node:
    """What the tests know about the machine they run on."""

    fuse_open: bool
    """/dev/fuse is usable by this user: apptainer mounts SIF images with squashfuse."""
    squashfuse: bool
    """squashfuse is installed, so with FUSE closed a plain `apptainer exec` of a SIF fails."""
    debian_mirror: str | None
    """The Debian mirror of the host's apt sources (FCG_DEBIAN_MIRROR), for image builds."""
    in_testbed: bool
    """Running inside tests/testbed (FCG_TESTBED=1)."""
    fuse_declared: str | None = field(default=None)
    """The FUSE state the testbed says it set (FCG_TESTBED_FUSE), to cross-check."""

    @property
    def apptainer_exec(self) -> list[str]:
        """`apptainer exec` with the flags a SIF needs on this node."""
        return ["apptainer", "exec"] if self.fuse_open else ["apptainer", "exec", "--unsquash"]


@pytest.fixture(scope="session")
def node() -> Node:
    """The node the tests run on: FUSE state, mirror, whether it is the testbed."""
    return Node(
        fuse_open=os.access("/dev/fuse", os.R_OK | os.W_OK),
        squashfuse=any(shutil.which(b) for b in ("squashfuse_ll", "squashfuse")),
        debian_mirror=os.environ.get("FCG_DEBIAN_MIRROR") or None,
        in_testbed=os.environ.get("FCG_TESTBED") == "1",
        fuse_declared=os.environ.get("FCG_TESTBED_FUSE") or None,
    )


@pytest.fixture
def shared_tmp_path(tmp_path: Path) -> Path:
    """A fresh directory that batch jobs can read and write too.

    On the testbed the jobs run on the same node, so pytest's tmp_path serves; on a real
    cluster set FCG_SHARED_TMP to a directory on a shared filesystem.
    """
    base = os.environ.get("FCG_SHARED_TMP")
    if not base:
        return tmp_path
    path = Path(base) / f"fcgtainer-test-{os.getpid()}-{time.monotonic_ns()}"
    path.mkdir(parents=True)
    return path


# ---------------------------------------------------------------- images


def image_cache_dir() -> Path:
    """Where built test images are kept between runs (FCG_TEST_IMAGE_CACHE overrides)."""
    default = Path.home() / ".cache" / "fcgtainer-tests" / "images"
    path = Path(os.environ.get("FCG_TEST_IMAGE_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_image(recipe: Path, build_args: dict[str, str], timeout: float = 900) -> Path:
    """Build a recipe with `apptainer build --fakeroot`, cached by recipe and arguments.

    The SIF is named after a hash of the recipe text and the build arguments, so an edit
    rebuilds it; concurrent sessions wait for one another through a lock file.
    """
    h = hashlib.sha256(recipe.read_bytes())
    for key, value in sorted(build_args.items()):
        h.update(f"\n{key}={value}".encode())
    cache = image_cache_dir()
    sif = cache / f"{recipe.stem}-{h.hexdigest()[:12]}.sif"
    with open(cache / f"{sif.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if sif.exists():
            return sif
        partial = sif.with_suffix(".sif.partial")
        argv = ["apptainer", "build", "--fakeroot", "--force"]
        for key, value in sorted(build_args.items()):
            argv += ["--build-arg", f"{key}={value}"]
        start = time.monotonic()
        run([*argv, str(partial), str(recipe)], timeout=timeout, cwd=REPO)
        partial.rename(sif)
        print(f"built {sif} in {time.monotonic() - start:.0f} s")
    return sif


@pytest.fixture(scope="session")
def smoke_image(node: Node) -> Path:
    """recipes/debian-smoke.def built with --fakeroot (cached between runs)."""
    require("apptainer")
    if node.debian_mirror is None:
        message = "FCG_DEBIAN_MIRROR is not set (the testbed sets it from the host's apt sources)"
        if testbed_required():
            pytest.fail(message)
        pytest.skip(message)
    return build_image(SMOKE_RECIPE, {"debian_mirror": node.debian_mirror})


# ---------------------------------------------------------------- batch jobs


@dataclass
class JobRegistry:
    """Batch jobs a test session submitted, so teardown can prove none is left behind."""

    slurm: list[str] = field(default_factory=list)
    htcondor: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def submitted_jobs() -> Iterator[JobRegistry]:
    """Record job ids here; at the end of the session none of them may still be queued."""
    jobs = JobRegistry()
    yield jobs
    leftovers = []
    if jobs.slurm:
        out = run(["squeue", "-h", "-o", "%i %T", "-j", ",".join(jobs.slurm)], check=False)
        leftovers += [f"SLURM {line}" for line in out.stdout.splitlines() if line.strip()]
    if jobs.htcondor:
        constraint = " || ".join(f"ClusterId == {c}" for c in jobs.htcondor)
        out = run(["condor_q", "-allusers", "-constraint", constraint, "-af", "ClusterId",
                   "ProcId", "JobStatus"], check=False)  # fmt: skip
        leftovers += [f"HTCondor {line}" for line in out.stdout.splitlines() if line.strip()]
    assert not leftovers, f"jobs the tests submitted are still queued: {leftovers}"


def poll(probe: Callable[[], object], timeout: float, what: str) -> object:
    """Poll probe() until it returns something true (and return that); fail after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def run_command() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_command(argv, timeout=60, check=True, cwd=None)``: run, raise with output on failure."""
    return run


@pytest.fixture(scope="session")
def wait_until() -> Callable[[Callable[[], object], float, str], object]:
    """``wait_until(probe, timeout, what)``: poll until probe() is true and return its value."""
    return poll
