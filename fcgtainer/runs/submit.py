"""Submitting a run: plan, preflight, journal first, then one scheduler call.

``submit`` is idempotent: the run's UUID is journaled before the scheduler is called, and a
run left ``submitting`` by a crash or a timed-out call is reconciled by UUID (the backend's
``find``) before anything is submitted again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fcgtainer import __version__, proc
from fcgtainer.backends import get_backend
from fcgtainer.backends.base import Backend
from fcgtainer.config.job import Job, load_job, parse_sets
from fcgtainer.config.site import Site, load_site
from fcgtainer.errors import CommandError, ConfigError, PreflightError, SubmitError
from fcgtainer.paths import git_commit
from fcgtainer.plan.tasks import Payload, Plan, Runtime, make_plan, secret_env, task_spec
from fcgtainer.private import make_private_dir, private_umask
from fcgtainer.runs import cache
from fcgtainer.runs.journal import Journal
from fcgtainer.runs.rundir import SpecLines, write_run_dir
from fcgtainer.states import State, TaskStatus
from fcgtainer.tasktable import spec_line


@dataclass(frozen=True)
class Submitted:
    """The outcome of ``submit``: the run and whether an earlier attempt was adopted."""

    plan: Plan
    ids: Mapping[int, str]
    adopted: bool
    cached: Mapping[int, str] = field(default_factory=dict)  # task -> where its result is
    waiting: int = 0  # tasks left for `fcgtainer resubmit --waiting` (no room in the queue)
    note: str = ""  # why they wait


def choose_runtime(job: Job, site: Site, image: str | None) -> Runtime:
    """Native or Apptainer: the site decides; ``auto`` uses Apptainer when it is there.

    Raises
    ------
    ConfigError
        If ``--image`` was given and the tasks would run natively, without it.
    """
    if job.image is None and image is None:
        return "native"
    if site.runtime == "native":
        if image is not None:
            raise ConfigError(
                f"--image {image}: site {site.name} runs its tasks natively "
                f"({site.source}: runtime: native)",
                "set runtime: apptainer (or auto) in the site profile, or leave --image out",
            )
        return "native"
    if site.runtime == "apptainer" or shutil.which(site.apptainer.binary):
        return "apptainer"
    if image is not None:
        raise ConfigError(
            f"--image {image}: {site.apptainer.binary} is not on this host's PATH, so site "
            f"{site.name} (runtime: auto) would run the tasks natively, without the image",
            "install Apptainer (`fcgtainer doctor` says how), or leave --image out",
        )
    return "native"


def resolve_image(job: Job, site: Site, override: str | None) -> str | None:
    """The SIF a run uses: ``--image``, a path in the job, or the newest build of its recipe.

    A registry reference (``oras://``) is pulled to the site's cache, pinned by digest.
    """
    ref = override or job.image
    if ref is None:
        return None
    from fcgtainer.images.registry import site_image  # oras:// references, signatures

    staged = site_image(ref, site)
    if staged is not None:
        return staged
    if ref.endswith(".sif") or "/" in ref:
        return str(Path(os.path.expanduser(ref)).absolute())
    from fcgtainer.images.build import find_image  # the images layer; only needed for recipes

    return find_image(ref, site)


def plan_run(
    job_ref: str,
    site_ref: str,
    set_items: Sequence[str],
    *,
    image: str | None = None,
    run_id: str | None = None,
    max_tasks: int | None = None,
    payload: Payload | None = None,
) -> Plan:
    """Load the job and the site and plan the run (no side effect)."""
    job = load_job(job_ref)
    site = load_site(site_ref)
    sets = parse_sets(set_items)
    runtime = choose_runtime(job, site, image)
    sif = resolve_image(job, site, image) if runtime == "apptainer" else None
    if sif is not None:
        from fcgtainer.images.support import refuse_unsupported  # job x image (issue 24)

        refuse_unsupported(job, image)
    return make_plan(
        job,
        site,
        sets,
        run_id or str(uuid.uuid4()),
        runtime=runtime,
        image=sif,
        max_tasks=max_tasks,
    )


def plan_key(plan: Plan) -> str:
    """Identifies 'the same submission' across CLI invocations (everything but the UUID)."""
    blob = json.dumps(
        [
            plan.job.model_dump(mode="json"),
            plan.job.source,
            plan.site.model_dump(mode="json"),
            sorted(plan.sets.items()),
            plan.image,
            plan.runtime,
            plan.payload,
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class Checked:
    """What the job's checks said (each one's last line of output) and where they were given
    each step's spec lines (:func:`check_specs`)."""

    lines: SpecLines = field(default_factory=dict)
    said: tuple[str, ...] = ()


def preflight(plan: Plan, specs_dir: Path | None = None) -> Checked:
    """Everything that must hold before a task is queued; raises one clear error.

    Returns what the job's checks said and where they found each step's spec lines (in
    ``specs_dir``, which the caller keeps until the run's task table is written)."""
    for name, path in plan.inputs.items():
        spec = plan.job.inputs[name]
        if spec.required and not Path(path).is_dir():
            where = f"{plan.site.source}: job_inputs.{plan.job.name}.{name}"
            if plan.job.name not in plan.site.job_inputs:
                where = f"{plan.job.source}: inputs.{name}.default"
            raise PreflightError(
                f"{where}: input directory {path} does not exist",
                "stage it there first (compute nodes may have no internet), or point the site "
                f"profile at it: job_inputs: {{{plan.job.name}: {{{name}: /path}}}}",
            )
    for name, spec in plan.job.inputs.items():
        if spec.required and name not in plan.inputs:
            raise ConfigError(
                f"{plan.job.source}: inputs.{name}: required input has no location",
                f"set job_inputs.{plan.job.name}.{name} in the site profile",
            )
    if not plan.site.internet:
        offline_preflight(plan)
    for name, path in plan.inputs.items():
        if plan.job.inputs[name].check:
            check_input(plan, name, path)
    if plan.runtime == "apptainer" and (plan.image is None or not Path(plan.image).is_file()):
        recipe = plan.job.image or "RECIPE"
        raise PreflightError(
            f"{plan.job.source}: image: no image at {plan.image}",
            f"check the path, build it with `fcgtainer build {recipe}`, or pass --image",
        )
    return check_specs(plan, specs_dir)


def check_input(plan: Plan, name: str, path: str) -> None:
    """Run the job's check of an input on this host (``inputs.NAME.check``)."""
    check = plan.job.inputs[name].check
    code, last, argv = _host_check(plan, check, "{path}", path, f"inputs.{name}.check")
    if code != 0:
        raise PreflightError(
            f"input {name} ({path}): {last}",
            f"restage it or point the site profile elsewhere (check: {shlex.join(argv)})",
        )


def check_specs(plan: Plan, into: Path | None = None) -> Checked:
    """Run the job's ``check`` (or each step's) on every task's spec, on this host.

    Each distinct check command runs once, with ``{specs}`` a JSON-lines file of the specs
    of every task it checks, written into ``into`` (a private temporary directory if not
    given) and left there: the run's task table copies its lines from these files rather
    than serialising 100,000 specs twice. Exit 2 (the payload contract's configuration
    error) is bad input: the command's last line is the error. Any other failure means the
    check could not run here (say, the job directory holds a job.yaml without its code): a
    preflight error.
    """
    if into is None:
        with tempfile.TemporaryDirectory(prefix="fcgtainer-check-") as tmp:  # mode 0700
            return Checked(said=check_specs(plan, Path(tmp)).said)
    groups: dict[tuple[str, ...], list[Plan]] = {}
    for step in plan.step_plans():
        if step.plan.job.check:
            groups.setdefault(step.plan.job.check, []).append(step.plan)
    where: dict[str, tuple[Path, int]] = {}
    said: list[str] = []
    for number, (check, plans) in enumerate(groups.items()):
        specs = into / f"specs-{number}.jsonl"
        with specs.open("wb") as out:  # a line at a time: 100,000 specs are ~70 MB
            for one in plans:
                where[one.step] = (specs, out.tell())
                out.writelines(spec_line(task_spec(one, t)) for t in one.tasks)
        specs.chmod(0o400)  # the table reads these lines back: the check only reads them
        code, last, _ = _host_check(plan, check, "{specs}", str(specs), "check")
        if code == 2:
            raise ConfigError(
                f"{plan.job.name}: {last}",
                f"give another value with --set or in {plan.job.source} "
                f"(checked by: {shlex.join(check)})",
            )
        if code != 0:
            raise PreflightError(
                f"{plan.job.source}: check could not run here (exit {code}): {last}",
                f"submit from where {plan.job.job_dir} holds the job's code, or drop the "
                "check from your copy of job.yaml (check: [])",
            )
        said.append(f"passed: {shlex.join(check)} ({last})")
    return Checked(where, tuple(said))


def _host_check(
    plan: Plan, check: Sequence[str], placeholder: str, value: str, key: str
) -> tuple[int, str, list[str]]:
    """Run one of the job's checks on this host: ``python3`` is the CLI's own interpreter,
    ``placeholder`` becomes ``value``, the job directory is the working directory.
    Returns the exit code, the last line of output and the argv run."""
    argv = [sys.executable if a == "python3" else a.replace(placeholder, value) for a in check]
    try:
        done = proc.run(argv, check=False, timeout=600, cwd=plan.job.job_dir)
    except CommandError as exc:
        raise PreflightError(
            f"{plan.job.source}: {key}: {exc}", "fix the command in job.yaml"
        ) from exc
    last = (done.stderr.strip() or done.stdout.strip() or "no message").splitlines()[-1]
    return done.returncode, last, argv


def offline_preflight(plan: Plan) -> None:
    """``internet: false``: refuse what a task could only do with the network."""
    from fcgtainer.plan.container import cvmfs_modes

    offline = f"{plan.site.source}: internet: false"
    for name, path in plan.inputs.items():
        if "://" in path:
            raise PreflightError(
                f"{offline}, but input {name} is a URL ({path})",
                "stage it on a filesystem the compute nodes see and point job_inputs at it",
            )
    # an oras:// image is pulled here, on the submit host, before anything is queued
    if plan.job.image and "://" in plan.job.image and not plan.job.image.startswith("oras://"):
        raise PreflightError(
            f"{offline}, but {plan.job.source}: image is remote ({plan.job.image})",
            "pull it to a .sif on the shared filesystem first and pass --image",
        )
    for repo, mode in cvmfs_modes(plan):
        if mode in ("cvmfsexec", "auto"):
            how = "is mounted with cvmfsexec" if mode == "cvmfsexec" else "may need cvmfsexec"
            raise PreflightError(
                f"{offline}, but CVMFS repository {repo} {how}, which downloads from CVMFS servers",
                f"set cvmfs.repositories.{repo}: host if the nodes mount it, or use an image "
                "with the software baked in (standalone)",
            )


def manifest(plan: Plan) -> dict[str, Any]:
    """What the run was made of: job and site as loaded, versions, host, image."""
    image: dict[str, Any] | None = None
    if plan.image:
        from fcgtainer.images.build import image_digest
        from fcgtainer.images.registry import origin

        image = {"path": plan.image, "sha256": image_digest(Path(plan.image))}
        image.update(origin(plan.image))  # reference, tag and digest of a pulled image
    return {
        "run": plan.run_id,
        "fcgtainer": __version__,
        "git_commit": git_commit(),
        "host": platform.node(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "job": {
            **plan.job.model_dump(mode="json"),
            "source": plan.job.source,
            "job_dir": plan.job.job_dir,
        },
        "site": redacted_site(plan.site),
        "site_source": plan.site.source,
        "env": {"names": sorted(secret_env(plan, os.environ)), "values": "not recorded"},
        "sets": dict(plan.sets),
        "runtime": plan.runtime,
        "image": image,
        "payload": payload_record(plan, image),
        "tasks": len(plan.tasks),
    }


SECRET = "(not recorded)"


def redacted_site(site: Site) -> dict[str, Any]:
    """The site as loaded, with the values of ``env.set`` replaced by a placeholder."""
    data = site.model_dump(mode="json")
    data["env"]["set"] = dict.fromkeys(data["env"]["set"], SECRET)
    return data


def payload_record(plan: Plan, image: Mapping[str, Any] | None) -> dict[str, Any]:
    """Whose code the tasks run: the image's baked ``jobs/``, or the checkout's, pinned."""
    if plan.payload == "image":
        return {
            "from": "image",
            "job_dir": plan.task_job_dir,
            "image_sha256": (image or {}).get("sha256"),
        }
    return {"from": "checkout", "job_dir": plan.job.job_dir, **checkout_state(plan.job.job_dir)}


def checkout_state(directory: str) -> dict[str, Any]:
    """The git commit of a checkout and a hash of its uncommitted changes under ``directory``.

    ``uncommitted_sha256`` is None when the directory matches the commit; otherwise it hashes
    the diff against HEAD and the content of untracked files, so two runs with the same value
    ran the same code.
    """

    def git(*args: str) -> bytes | None:
        try:
            done = subprocess.run(
                ["git", "-C", directory, *args], capture_output=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    if head is None:
        return {"git_commit": None, "uncommitted_sha256": None, "note": "not a git checkout"}
    digest = hashlib.sha256()
    diff = git("diff", "HEAD", "--binary", "--", ".") or b""
    digest.update(diff)
    untracked = git("ls-files", "-z", "--others", "--exclude-standard", "--", ".") or b""
    names = sorted(n for n in untracked.split(b"\0") if n)
    for name in names:
        digest.update(b"\0" + name + b"\0")
        with contextlib.suppress(OSError):
            digest.update((Path(directory) / os.fsdecode(name)).read_bytes())
    return {
        "git_commit": head.decode().strip(),
        "uncommitted_sha256": digest.hexdigest() if (diff or names) else None,
    }


def lock_path(journal: Journal, key: str) -> Path:
    """The lock a submitter of the plan with this key holds while it submits."""
    return journal.path.parent / "locks" / f"submit-{key[:32]}.lock"


@contextlib.contextmanager
def submit_lock(journal: Journal, key: str) -> Iterator[None]:
    """Hold the plan's submit lock: one submitter adopts or creates a run, never two."""
    path = lock_path(journal, key)
    make_private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise SubmitError(
                f"another `fcgtainer submit` of this job on this site is running (pid {other})",
                "wait for it to finish, then see `fcgtainer status`",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def submitting_now(journal: Journal, key: str) -> bool:
    """True while a live ``fcgtainer submit`` holds this plan's submit lock."""
    path = lock_path(journal, key)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def submit(
    plan: Plan, journal: Journal, backend: Backend | None = None, *, force: bool = False
) -> Submitted:
    """Journal the run, write its directory, and hand it to the scheduler once.

    Under the plan's submit lock: of several identical ``submit`` commands started together,
    one adopts (or creates) the run and the others stop with an error. A campaign's tasks
    whose results exist under the same key are not submitted (``force``: all are); when
    nothing changed, the scheduler is not called at all.
    """
    key = plan_key(plan)
    with submit_lock(journal, key):
        return _submit_locked(plan, journal, backend or get_backend(plan.site), key, force)


def _submit_locked(
    plan: Plan, journal: Journal, backend: Backend, key: str, force: bool = False
) -> Submitted:
    for earlier in journal.pending_runs(key):
        # an earlier submit of this very plan crashed or timed out: reconcile by its UUID
        again = plan_with_id(plan, earlier.id)
        found = backend.find(again)
        if found:
            journal.set_backend_ids(again.run_id, found)
            return Submitted(again, found, adopted=True)
        _write_run_dir(again, manifest(again))
        ids = _submit_once(backend, again)
        every = [t.index for t in again.tasks]
        waiting = record_submitted(journal, again.run_id, every, ids, backend)
        return Submitted(again, ids, adopted=False, waiting=waiting, note=backend.note)
    with tempfile.TemporaryDirectory(prefix="fcgtainer-check-") as tmp:  # mode 0700
        checked = preflight(plan, Path(tmp))
        record = manifest(plan)
        keys: dict[int, str] = {}
        reused: dict[int, tuple[Path, int]] = {}
        if plan.steps:
            keys = cache.task_keys(plan, record)
            reused = {} if force else cache.find(plan, keys)
            record["cache"] = cache.record(plan, keys, reused)
        journal.create_run(
            plan.run_id,
            job=plan.job.name,
            site=plan.site.name,
            scheduler=plan.site.scheduler,
            run_dir=plan.run_dir,
            plan_key=key,
            manifest=record,
            task_names=[t.name for t in plan.tasks],
        )
        _write_run_dir(plan, record, checked.lines)
    if keys:
        cache.apply(plan, keys, reused)
    todo = [t.index for t in plan.tasks if t.index not in reused]
    ids = _submit_once(backend, plan, todo) if todo else {}
    if reused:
        journal.update_states(
            plan.run_id,
            {
                i: TaskStatus(State.SUCCEEDED, 0, f"cached: run {d.name} task {j}")
                for i, (d, j) in reused.items()
            },
        )
    waiting = record_submitted(journal, plan.run_id, todo, ids, backend)
    where = {i: f"{d.name} task {j}" for i, (d, j) in reused.items()}
    return Submitted(plan, ids, adopted=False, cached=where, waiting=waiting, note=backend.note)


FEEDING = "feeding"  # the run's phase while some of its tasks wait for room in the queue


def waiting_status(run_id: str, note: str) -> TaskStatus:
    """The state of a task the scheduler had no room for yet."""
    return TaskStatus(
        State.PENDING,
        reason=f"waiting for room: {note or 'the scheduler took fewer tasks'}; "
        "the run's feeder submits it when room frees (feeder.log)",
    )


def record_submitted(
    journal: Journal,
    run_id: str,
    requested: Sequence[int],
    ids: Mapping[int, str],
    backend: Backend,
    *,
    feeder: bool = True,
    others_wait: bool = False,
) -> int:
    """Journal the scheduler's ids, and the requested tasks it left out (no room) as
    waiting; how many wait.

    The run's phase becomes ``feeding`` if any task waits (``others_wait``: tasks not
    requested this time), in the same transaction as the ids: ``status`` keeps waiting
    tasks pending (never LOST), and the run's feeder (:mod:`fcgtainer.runs.feeder`,
    started here unless ``feeder`` is off: it is the caller) submits them as room frees,
    as ``resubmit --waiting`` does.
    """
    waiting = [i for i in requested if i not in ids] if backend.note else []
    journal.set_backend_ids(run_id, ids, phase=FEEDING if waiting or others_wait else "submitted")
    if not waiting:
        return 0
    journal.update_states(run_id, dict.fromkeys(waiting, waiting_status(run_id, backend.note)))
    if feeder:
        from fcgtainer.runs import feeder as feeders

        feeders.start(journal.run(run_id))
    return len(waiting)


def _write_run_dir(plan: Plan, record: Mapping[str, Any], specs: SpecLines | None = None) -> None:
    """The run directory, or one clear error (a full disk, an unwritable runs_dir...)."""
    try:
        write_run_dir(plan, record, os.environ, specs)
    except OSError as exc:
        raise SubmitError(
            f"{plan.run_dir}: cannot write the run directory ({exc.strerror or exc})",
            "free space or fix permissions on the runs_dir filesystem, then run the same "
            "`fcgtainer submit` again: it resumes this run",
        ) from None


def _submit_once(
    backend: Backend, plan: Plan, indices: Sequence[int] | None = None
) -> dict[int, str]:
    """One scheduler call; if it timed out, ask by UUID whether it went through anyway.

    Under a private umask: schedulers (SLURM's ``--output``) create files with the
    submitter's umask, and the local supervisor inherits it.
    """
    try:
        with private_umask(plan.site.share_group):
            return backend.submit(plan, indices)
    except proc.CommandTimeout:
        found = backend.find(plan)
        if found:
            return found
        raise


def plan_with_id(plan: Plan, run_id: str) -> Plan:
    """The same plan under an earlier run's UUID (and so that run's directory)."""
    run_dir = plan.site.runs_path / f"{plan.job.name}-{run_id[:8]}"
    return replace(plan, run_id=run_id, run_dir=run_dir)
