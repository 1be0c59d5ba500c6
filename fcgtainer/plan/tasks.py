"""A plan: job x site -> tasks with resources, paths and payload argv. Pure data.

Nothing here touches a scheduler; ``--dry-run`` prints a plan exactly as it will be
submitted, and the golden tests render it without any cluster.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from fcgtainer.config.job import (
    Dependency,
    Job,
    Scalar,
    TaskParams,
    apply_overrides,
    expand,
)
from fcgtainer.config.loader import Resources
from fcgtainer.config.site import Site
from fcgtainer.errors import ConfigError

Runtime = Literal["native", "apptainer"]
Payload = Literal["image", "checkout"]
IMAGE_JOBS = "/opt/fcgtainer/jobs"  # where the recipes bake jobs/ into an image


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
    payload: Payload = "checkout"
    # a campaign: its steps in order (empty for a job without steps:, a one-step campaign)
    steps: tuple[StepPlan, ...] = ()
    # a step's own plan: its name and, per task (global index), the upstream tasks it reads
    step: str = ""
    upstream: Mapping[int, Mapping[str, tuple[int, ...]]] = field(default_factory=dict)
    # a step's tasks wait (not fail) when a task they read did not succeed
    wait_upstream: bool = False

    @property
    def bundle(self) -> int:
        """Tasks per scheduler job (``bundle:`` of the job or step, else of the site)."""
        return bundle_size(self.job, self.site)

    def step_plans(self) -> tuple[StepPlan, ...]:
        """The steps to submit: a job without ``steps:`` is the one step of itself."""
        return self.steps or (StepPlan(self.job.name, self, {}, 0),)

    def step_of(self, index: int) -> StepPlan:
        """The step a task (global index) belongs to."""
        for step in self.step_plans():
            if step.offset <= index < step.offset + len(step.plan.tasks):
                return step
        raise KeyError(index)

    @property
    def task_job_dir(self) -> str:
        """The job's code as the task sees it: baked in the image, or the host's checkout."""
        if self.runtime == "apptainer" and self.payload == "image":
            return f"{IMAGE_JOBS}/{Path(self.job.job_dir).name}"
        return self.job.job_dir

    @property
    def name(self) -> str:
        """The scheduler-visible name: job name (and step) plus the run UUID (to reconcile)."""
        if self.step:
            return f"fcg-{self.job.name}-{self.step}-{self.run_id}"
        return f"fcg-{self.job.name}-{self.run_id}"

    @property
    def offset(self) -> int:
        """A step's first task index in the run (its local task ``i`` is ``offset + i``)."""
        return self.tasks[0].index if self.step else 0

    def task_dir(self, index: int) -> Path:
        """Where the task's spec, argv, log and exit-code marker live."""
        return self.run_dir / "tasks" / str(index)

    def out_dir(self, index: int) -> Path:
        """The task's output directory (``out/<task>/``)."""
        return self.run_dir / "out" / str(index)


@dataclass(frozen=True)
class StepPlan:
    """One step of a campaign: its own plan (tasks numbered from ``offset`` in the run)."""

    name: str
    plan: Plan
    needs: Mapping[str, Dependency]
    offset: int

    @property
    def indices(self) -> list[int]:
        """The run-wide indices of the step's tasks."""
        return [t.index for t in self.plan.tasks]


def make_plan(
    job: Job,
    site: Site,
    sets: Mapping[str, str],
    run_id: str,
    *,
    runtime: Runtime,
    image: str | None = None,
    max_tasks: int | None = None,
    payload: Payload | None = None,
) -> Plan:
    """Expand ``job`` on ``site`` with ``--set`` overrides into a plan (pure).

    ``payload`` (default: the site's, ``image``) says whose code an Apptainer task runs: the
    copy of ``jobs/`` baked into its image, or the host's checkout bound over it. A native
    task always runs the checkout.

    A matrix of more than ``max_tasks`` (default: the site's ``max_tasks``, 100,000) is an
    error naming its largest axis: ``runs=1..3000000`` is more likely a typo than a plan.
    """
    if job.steps:
        return make_campaign(
            job,
            site,
            sets,
            run_id,
            runtime=runtime,
            image=image,
            max_tasks=max_tasks,
            payload=payload,
        )
    job, axes = apply_overrides(job, sets)
    check_param_placeholders(job, axes, sets)
    check_size(job, site, axes, site.max_tasks if max_tasks is None else max_tasks)
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
    check_bundle(job, site)
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
        payload="checkout" if runtime == "native" else (payload or site.payload),
    )


def check_param_placeholders(
    job: Job, axes: Mapping[str, Sequence[Scalar]], sets: Mapping[str, str]
) -> None:
    """Every ``{param.X}`` of the command names a matrix axis or a param that has a value.

    Otherwise the task would get the placeholder's own text, or ``None``, as an argument.
    """
    for arg in job.command:
        for key in _PLACEHOLDER.findall(arg):
            name = key.removeprefix("param.")
            if not key.startswith("param.") or name in axes:
                continue
            if name not in job.params:
                known = ", ".join(sorted([*job.params, *axes])) or "none"
                raise ConfigError(
                    f"{job.source}: command: {{{key}}} names no param or matrix axis",
                    f"declare params.{name} in {job.source}, or use one of: {known}",
                )
            if job.params[name] is None:
                how = f"--set {name}={sets[name]}" if name in sets else f"params.{name}: null"
                raise ConfigError(
                    f"{job.source}: command passes {{{key}}}, and {how} leaves it without a value",
                    f"give it one: params.{name} in {job.source}, or --set {name}=VALUE",
                )


def bundle_size(job: Job, site: Site) -> int:
    """Tasks per scheduler job: the job's (or step's) ``bundle``, else the site's."""
    return job.bundle if job.bundle is not None else site.bundle


def in_bundles(tasks: Sequence[int], size: int) -> dict[int, tuple[int, ...]]:
    """``tasks`` in bundles of ``size``, in order: each bundle's first task -> its tasks."""
    return {tasks[k]: tuple(tasks[k : k + size]) for k in range(0, len(tasks), size)}


def check_bundle(job: Job, site: Site) -> None:
    """Bundles are for short tasks: not with checkpoints."""
    size = bundle_size(job, site)
    if size == 1:
        return
    where = job.source if job.bundle is not None else site.source
    if job.checkpoint.enabled:
        raise ConfigError(
            f"{where}: bundle: {size} with checkpoint.enabled in {job.source}: a bundled task "
            "cannot be requeued alone",
            "bundle short tasks only; a checkpointing task runs one per job (bundle: 1)",
        )
    granted = site.htcondor.granted_runtime if site.scheduler == "htcondor" else None
    walltime = job.resources_for(site.gpus.count).walltime
    if granted and size * walltime > granted:
        raise ConfigError(
            f"{where}: bundle: {size}: {size} tasks of walltime {walltime} s need "
            f"{size * walltime} s in one job, and {site.source} grants a job {granted} s "
            "(htcondor.max_runtime / job_flavour)",
            f"set the job's walltime to at most {granted // size} s (resources.walltime), "
            f"or bundle: {max(1, granted // walltime)}",
        )


def step_sets(job: Job, sets: Mapping[str, str]) -> dict[str, str]:
    """The ``--set`` overrides that concern one step: its params, axes and resources."""
    known = {*job.params, *job.axes(), "runs", "runs.banned"}
    runs = "run" in job.axes()
    return {
        k: v
        for k, v in sets.items()
        if (k in known and (runs or not k.startswith("runs"))) or k.startswith("resources.")
    }


def make_campaign(
    job: Job,
    site: Site,
    sets: Mapping[str, str],
    run_id: str,
    *,
    runtime: Runtime,
    image: str | None = None,
    max_tasks: int | None = None,
    payload: Payload | None = None,
) -> Plan:
    """A campaign's plan: one sub-plan per step, tasks numbered through the whole run.

    Step ``s`` has tasks ``offset..offset+n-1`` (its local task ``i`` is ``offset + i``);
    ``upstream`` says which tasks each task reads: task ``i`` of a ``per_task`` step, or
    every task of an ``all`` step. ``--set`` applies to every step that has the key.
    """
    steps_jobs = job.step_jobs()
    used: set[str] = set()
    steps: list[StepPlan] = []
    offset = 0
    for name, step_job in steps_jobs.items():
        mine = step_sets(step_job, sets)
        used |= set(mine)
        sub = make_plan(
            step_job,
            site,
            mine,
            run_id,
            runtime=runtime,
            image=image,
            max_tasks=max_tasks,
            payload=payload,
        )
        tasks = tuple(TaskParams(offset + t.index, t.values) for t in sub.tasks)
        needs = job.steps[name].needs
        upstream: dict[int, dict[str, tuple[int, ...]]] = {t.index: {} for t in tasks}
        for needed, how in needs.items():
            other = next(s for s in steps if s.name == needed)
            if how == "per_task":
                if len(other.plan.tasks) != len(tasks):
                    raise ConfigError(
                        f"{job.source}: steps.{name}.needs.{needed}: per_task needs as many "
                        f"tasks as {needed!r} ({len(tasks)} here, {len(other.plan.tasks)} there)",
                        "give both steps the same matrix, or use all",
                    )
                for i, task in enumerate(tasks):
                    upstream[task.index][needed] = (other.offset + i,)
            else:
                for task in tasks:
                    upstream[task.index][needed] = tuple(other.indices)
        sub = replace(
            sub,
            tasks=tasks,
            step=name,
            upstream=upstream,
            sets=dict(sets),
            wait_upstream=job.steps[name].on_upstream_failure == "wait",
        )
        steps.append(StepPlan(name, sub, dict(needs), offset))
        offset += len(tasks)
    unused = set(sets) - used
    if unused:
        apply_overrides(next(iter(steps_jobs.values())), {k: sets[k] for k in sorted(unused)})
    limit = site.max_tasks if max_tasks is None else max_tasks
    if offset > limit:
        raise ConfigError(
            f"{job.source}: the campaign has {offset:,} tasks, above the limit of {limit:,} "
            f"({site.source}: max_tasks)",
            f"confirm the size with --max-tasks {offset}",
        )
    first = steps[0].plan
    every = tuple(
        TaskParams(t.index, {"step": s.name, **t.values}) for s in steps for t in s.plan.tasks
    )
    return replace(
        first,
        job=job,
        axes={},
        tasks=every,
        sets=dict(sets),
        steps=tuple(steps),
        step="",
        upstream={},
    )


def with_dependents(plan: Plan, indices: Sequence[int]) -> list[int]:
    """``indices`` and every campaign task that reads one of them, directly or not."""
    chosen = set(indices)
    for step in plan.steps:  # in order: a task's upstream tasks come from earlier steps
        for task in step.plan.tasks:
            reads = {j for js in step.plan.upstream.get(task.index, {}).values() for j in js}
            if reads & chosen:
                chosen.add(task.index)
    return sorted(chosen)


def check_size(job: Job, site: Site, axes: Mapping[str, list[Scalar]], limit: int) -> None:
    """Refuse a matrix above ``limit`` tasks unless the person confirmed that size."""
    total = 1
    for values in axes.values():
        total *= len(values)
    if total <= limit:
        return
    axis = max(axes, key=lambda k: len(axes[k]))
    raise ConfigError(
        f"{job.source}: the job expands to {total:,} tasks, above the limit of {limit:,} "
        f"({site.source}: max_tasks); the largest axis is {axis!r} with {len(axes[axis]):,} "
        "values",
        f"check {axis!r} (a typo such as runs=1..3000000?), or confirm the size with "
        f"--max-tasks {total}",
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
    extra: dict[str, Any] = {}
    if plan.step:
        # a campaign step: what it reads from upstream tasks, as data (their out/ paths)
        extra = {
            "step": plan.step,
            "step_task": task.index - plan.offset,
            "upstream": {
                step: [{"task": j, "out_dir": f"{plan.run_dir}/out/{j}"} for j in indices]
                for step, indices in plan.upstream.get(task.index, {}).items()
            },
        }
    return {
        "fcgtainer": 1,
        "job": plan.job.name,
        "run": plan.run_id,
        "task": task.index,
        "task_name": task.name,
        "params": params,
        "inputs": dict(plan.inputs),
        "out_dir": f"{plan.run_dir}/out/{task.index}",
        "job_dir": plan.task_job_dir,
        "scratch": plan.site.scratch,
        "gpus": plan.resources.gpus,
        "attempt": attempt,
        **extra,
    }


def payload_argv(plan: Plan, task: TaskParams) -> list[str]:
    """The job's command with its placeholders filled in, one argv element each.

    Each placeholder is replaced once, by its value as data: a value that looks like a
    placeholder stays as it is.
    """

    def fill(match: re.Match[str]) -> str:
        key = match[1]
        if key.startswith("param."):
            name = key[len("param.") :]
            if name in task.values:
                return argv_value(task.values[name])
            return argv_value(plan.job.params[name]) if name in plan.job.params else match[0]
        if key == "spec":
            return f"{plan.run_dir}/tasks/{task.index}/spec.json"  # task_dir, as a string
        if key == "out":
            return f"{plan.run_dir}/out/{task.index}"
        if key == "task":
            return str(task.index)
        if key == "run":
            return plan.run_id
        if key == "job_dir":
            return plan.task_job_dir
        return match[0]

    # most arguments have nothing to fill in (planned once per task)
    return [arg if "{" not in arg else _PLACEHOLDER.sub(fill, arg) for arg in plan.job.command]


_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+|param\.[^{}]+)\}")


def argv_value(value: object) -> str:
    """A param as one argv element, written as the spec file writes it (JSON): ``true``,
    ``0.0001``, ``["a", "b"]``; a string as it is."""
    return value if isinstance(value, str) else json.dumps(value)


def secret_env(plan: Plan, host_env: Mapping[str, str]) -> dict[str, str]:
    """What comes from the submitter: the allow-listed variables and the site's ``env.set``.

    These values may be tokens (``HF_TOKEN``, ``WANDB_API_KEY``): they never go on a command
    line, in the manifest or in the journal; the task reads them from a 0600 file
    (:func:`env_file`). Records keep their names only.
    """
    env = {k: host_env[k] for k in plan.site.env.allow if k in host_env}
    env.update(plan.site.env.set)
    for key in CONTRACT_ENV:
        env.pop(key, None)
    return env


CONTRACT_ENV = (
    "FCGTAINER_SPEC",
    "FCGTAINER_RUN",
    "FCGTAINER_TASK",
    "FCGTAINER_OUT",
    "FCGTAINER_ATTEMPT",
    "PYTHONPATH",
)


def contract_env(plan: Plan, task: TaskParams, secrets: Mapping[str, str]) -> dict[str, str]:
    """The task contract's variables (docs/payload-contract.md): paths and ids, no secret."""
    env = {
        "FCGTAINER_SPEC": f"{plan.run_dir}/tasks/{task.index}/spec.json",
        "FCGTAINER_RUN": plan.run_id,
        "FCGTAINER_TASK": str(task.index),
        "FCGTAINER_OUT": f"{plan.run_dir}/out/{task.index}",
        "PYTHONPATH": plan.task_job_dir,
        "FCGTAINER_ATTEMPT": "1",  # the job wrapper puts the real attempt number here
    }
    if "OMP_NUM_THREADS" not in secrets:
        env["OMP_NUM_THREADS"] = str(plan.resources.cpus)
    return env


def env_file(plan: Plan) -> Path:
    """The 0600 file that carries :func:`secret_env` to the tasks (``KEY=VALUE``, NUL-ended)."""
    return plan.run_dir / "env"


def encode_env(env: Mapping[str, str]) -> bytes:
    """``KEY=VALUE\\0`` records, the format the task's launcher reads."""
    return b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items())


def payload_env(plan: Plan, task: TaskParams, host_env: Mapping[str, str]) -> dict[str, str]:
    """The task's whole environment: the site's allow-list, fixed values, the contract's."""
    secrets = secret_env(plan, host_env)
    return {**secrets, **contract_env(plan, task, secrets)}
