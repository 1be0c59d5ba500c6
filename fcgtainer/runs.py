"""Submitting a run: plan, preflight, journal first, then one scheduler call.

``submit`` is idempotent: the run's UUID is journaled before the scheduler is called, and a
run left ``submitting`` by a crash or a timed-out call is reconciled by UUID (the backend's
``find``) before anything is submitted again.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fcgtainer import __version__, proc
from fcgtainer.backends import get_backend
from fcgtainer.backends.base import Backend
from fcgtainer.errors import CommandError, ConfigError, PreflightError
from fcgtainer.job import Job, load_job, parse_sets
from fcgtainer.journal import Journal
from fcgtainer.plan import Plan, Runtime, make_plan
from fcgtainer.rundir import write_run_dir
from fcgtainer.site import Site, load_site


@dataclass(frozen=True)
class Submitted:
    """The outcome of ``submit``: the run and whether an earlier attempt was adopted."""

    plan: Plan
    ids: Mapping[int, str]
    adopted: bool


def choose_runtime(job: Job, site: Site, image: str | None) -> Runtime:
    """Native or Apptainer: the site decides; ``auto`` uses Apptainer when it is there."""
    if site.runtime == "native" or (job.image is None and image is None):
        return "native"
    if site.runtime == "apptainer":
        return "apptainer"
    return "apptainer" if shutil.which(site.apptainer.binary) else "native"


def resolve_image(job: Job, site: Site, override: str | None) -> str | None:
    """The SIF a run uses: ``--image``, a path in the job, or the newest build of its recipe."""
    ref = override or job.image
    if ref is None:
        return None
    if ref.endswith(".sif") or "/" in ref:
        return str(Path(os.path.expanduser(ref)).absolute())
    from fcgtainer.build import find_image  # the images layer; only needed for recipes

    return find_image(ref, site)


def plan_run(
    job_ref: str,
    site_ref: str,
    set_items: Sequence[str],
    *,
    image: str | None = None,
    run_id: str | None = None,
) -> Plan:
    """Load the job and the site and plan the run (no side effect)."""
    job = load_job(job_ref)
    site = load_site(site_ref)
    sets = parse_sets(set_items)
    runtime = choose_runtime(job, site, image)
    sif = resolve_image(job, site, image) if runtime == "apptainer" else None
    return make_plan(job, site, sets, run_id or str(uuid.uuid4()), runtime=runtime, image=sif)


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
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def preflight(plan: Plan) -> None:
    """Everything that must hold before a task is queued; raises one clear error."""
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
    if plan.runtime == "apptainer" and (plan.image is None or not Path(plan.image).is_file()):
        raise PreflightError(
            f"{plan.job.source}: image: no image at {plan.image}",
            f"build it with `fcgtainer build {plan.job.image or ''}` or pass --image",
        )


def manifest(plan: Plan) -> dict[str, Any]:
    """What the run was made of: job and site as loaded, versions, host, image."""
    image: dict[str, Any] | None = None
    if plan.image:
        from fcgtainer.build import image_digest

        image = {"path": plan.image, "sha256": image_digest(Path(plan.image))}
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
        "site": plan.site.model_dump(mode="json"),
        "site_source": plan.site.source,
        "sets": dict(plan.sets),
        "runtime": plan.runtime,
        "image": image,
        "tasks": len(plan.tasks),
    }


def git_commit() -> str | None:
    """The commit of the fcgtainer checkout, when it is one."""
    here = Path(__file__).resolve().parent.parent
    if not (here / ".git").exists():
        return None
    try:
        done = proc.run(["git", "-C", str(here), "rev-parse", "HEAD"], check=False, timeout=10)
    except CommandError:  # no git on this host (compute and test nodes often lack it)
        return None
    return done.stdout.strip() or None


def submit(plan: Plan, journal: Journal, backend: Backend | None = None) -> Submitted:
    """Journal the run, write its directory, and hand it to the scheduler once."""
    backend = backend or get_backend(plan.site)
    key = plan_key(plan)
    for earlier in journal.pending_runs(key):
        # an earlier submit of this very plan crashed or timed out: reconcile by its UUID
        again = plan_with_id(plan, earlier.id)
        found = backend.find(again)
        if found:
            journal.set_backend_ids(again.run_id, found)
            return Submitted(again, found, adopted=True)
        write_run_dir(again, manifest(again), os.environ)
        ids = _submit_once(backend, again)
        journal.set_backend_ids(again.run_id, ids)
        return Submitted(again, ids, adopted=False)
    preflight(plan)
    record = manifest(plan)
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
    write_run_dir(plan, record, os.environ)
    ids = _submit_once(backend, plan)
    journal.set_backend_ids(plan.run_id, ids)
    return Submitted(plan, ids, adopted=False)


def _submit_once(backend: Backend, plan: Plan) -> dict[int, str]:
    """One scheduler call; if it timed out, ask by UUID whether it went through anyway."""
    try:
        return backend.submit(plan)
    except proc.CommandTimeout:
        found = backend.find(plan)
        if found:
            return found
        raise


def plan_with_id(plan: Plan, run_id: str) -> Plan:
    """The same plan under an earlier run's UUID (and so that run's directory)."""
    run_dir = plan.site.runs_path / f"{plan.job.name}-{run_id[:8]}"
    return replace(plan, run_id=run_id, run_dir=run_dir)
