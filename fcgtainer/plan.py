"""A plan: job x site -> tasks with resources, paths and payload argv. Pure data.

Nothing here touches a scheduler; ``--dry-run`` prints a plan exactly as it will be
submitted, and the golden tests render it without any cluster.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fcgtainer.config import Resources
from fcgtainer.errors import ConfigError
from fcgtainer.job import Job, Scalar, TaskParams, apply_overrides, expand
from fcgtainer.site import Site

Runtime = Literal["native", "apptainer"]


@dataclass(frozen=True)
class Plan:
    """Everything needed to submit one run, decided before any scheduler is called."""

    run_id: str
    job: Job
    site: Site
    axes: Mapping[str, list[Scalar]]
    tasks: tuple[TaskParams, ...]
    resources: Resources
    runtime: Runtime
    image: str | None
    run_dir: Path
    inputs: Mapping[str, str] = field(default_factory=dict)
    sets: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The scheduler-visible name: job name plus the run UUID (for reconciliation)."""
        return f"fcg-{self.job.name}-{self.run_id}"

    def task_dir(self, index: int) -> Path:
        """Where the task's spec, argv, log and exit-code marker live."""
        return self.run_dir / "tasks" / str(index)

    def out_dir(self, index: int) -> Path:
        """The task's output directory (``out/<task>/``)."""
        return self.run_dir / "out" / str(index)


def make_plan(
    job: Job,
    site: Site,
    sets: Mapping[str, str],
    run_id: str,
    *,
    runtime: Runtime,
    image: str | None = None,
) -> Plan:
    """Expand ``job`` on ``site`` with ``--set`` overrides into a plan (pure)."""
    job, axes = apply_overrides(job, sets)
    tasks = tuple(expand(axes))
    if not tasks:
        raise ConfigError(f"{job.source}: the job expands to no task", "check matrix and runs")
    resources = job.resources_for(site.gpus.count)
    if resources.gpus > 0 and site.gpus.count == 0 and site.scheduler != "local":
        raise ConfigError(
            f"{site.source}: gpus.count: the site has no GPUs but {job.source} asks for "
            f"{resources.gpus}",
            "choose a GPU site, or set gpus.count in the site profile",
        )
    run_dir = site.runs_path / f"{job.name}-{run_id[:8]}"
    return Plan(
        run_id=run_id,
        job=job,
        site=site,
        axes=axes,
        tasks=tasks,
        resources=resources,
        runtime=runtime,
        image=image,
        run_dir=run_dir,
        inputs=resolve_inputs(job, site),
        sets=dict(sets),
    )


def resolve_inputs(job: Job, site: Site) -> dict[str, str]:
    """Named inputs: the site's path for this job if it names one, else the job's default."""
    named = site.job_inputs.get(job.name, {})
    unknown = set(named) - set(job.inputs)
    if unknown:
        raise ConfigError(
            f"{site.source}: job_inputs.{job.name}.{sorted(unknown)[0]}: the job has no such input",
            f"inputs of {job.name}: {', '.join(sorted(job.inputs)) or 'none'}",
        )
    resolved: dict[str, str] = {}
    for key, spec in job.inputs.items():
        raw = named.get(key, spec.default)
        if raw is None:
            continue
        text = raw.replace("{job_dir}", job.job_dir)
        path = Path(os.path.expandvars(os.path.expanduser(text))).absolute()
        if spec.required or path.exists():  # an optional input that is not there is left out
            resolved[key] = str(path)
    return resolved


def task_spec(plan: Plan, task: TaskParams, attempt: int = 1) -> dict[str, Any]:
    """The JSON spec the payload reads (docs/payload-contract.md)."""
    params: dict[str, Any] = dict(plan.job.params)
    params.update(task.values)
    return {
        "fcgtainer": 1,
        "job": plan.job.name,
        "run": plan.run_id,
        "task": task.index,
        "task_name": task.name,
        "params": params,
        "inputs": dict(plan.inputs),
        "out_dir": str(plan.out_dir(task.index)),
        "job_dir": plan.job.job_dir,
        "scratch": plan.site.scratch,
        "gpus": plan.resources.gpus,
        "attempt": attempt,
    }


def payload_argv(plan: Plan, task: TaskParams) -> list[str]:
    """The job's command with its placeholders filled in, one argv element each."""
    values = {
        "spec": str(plan.task_dir(task.index) / "spec.json"),
        "out": str(plan.out_dir(task.index)),
        "task": str(task.index),
        "run": plan.run_id,
        "job_dir": plan.job.job_dir,
    }
    params: dict[str, Any] = dict(plan.job.params)
    params.update(task.values)
    argv = []
    for arg in plan.job.command:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        for key, value in params.items():
            arg = arg.replace("{param." + key + "}", str(value))
        argv.append(arg)
    return argv


def payload_env(plan: Plan, task: TaskParams, host_env: Mapping[str, str]) -> dict[str, str]:
    """The task's whole environment: the site's allow-list, fixed values, the contract's."""
    env = {k: host_env[k] for k in plan.site.env.allow if k in host_env}
    env.update(plan.site.env.set)
    env.update(
        {
            "FCGTAINER_SPEC": str(plan.task_dir(task.index) / "spec.json"),
            "FCGTAINER_RUN": plan.run_id,
            "FCGTAINER_TASK": str(task.index),
            "FCGTAINER_OUT": str(plan.out_dir(task.index)),
            "PYTHONPATH": plan.job.job_dir,
        }
    )
    if "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(plan.resources.cpus)
    return env
