"""``fcgtainer shell``: the exact environment a task sees, interactive.

The shell is task 0 of a job (or of a bare job whose command is a shell) planned on the
site like a real run, with its own small run directory on the site's runs filesystem, and
started with :func:`fcgtainer.plan.container.shell_argv`: the same launcher, binds, scratch,
CVMFS and allow-listed environment as a batch task.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from fcgtainer import node
from fcgtainer.config.job import Job, load_job
from fcgtainer.config.site import Site, load_site
from fcgtainer.errors import PreflightError
from fcgtainer.plan.container import shell_argv
from fcgtainer.plan.tasks import Payload, Plan, make_plan, task_spec
from fcgtainer.private import make_private_dir, modes, write_private
from fcgtainer.runs.rundir import write_secret_env


def plan_shell(site: Site, image: str | None, job_ref: str | None) -> Plan:
    """Plan task 0 of ``job_ref`` (or of a bare shell job) in the image on the site."""
    from fcgtainer.images.recipe import DEFAULT
    from fcgtainer.runs.submit import resolve_image

    if job_ref:
        job = load_job(job_ref)
    else:
        job = Job(name="shell", command=("/bin/bash",)).model_copy(
            update={"job_dir": str(Path.cwd()), "source": "(fcgtainer shell)"}
        )
    sif = resolve_image(job, site, image) if (image or job.image) else None
    if sif is None:
        sif = resolve_image(job.model_copy(update={"image": DEFAULT}), site, None)
    if sif is None or not (Path(sif).is_file() or Path(sif).is_dir()):
        raise PreflightError(
            f"image: no image at {sif}",
            "build one with `fcgtainer build RECIPE` or pass --image PATH.sif",
        )
    run_id = str(uuid.uuid4())
    # a bare shell sees the current directory as its job; a job's shell runs what its tasks run
    payload: Payload | None = None if job_ref else "checkout"
    plan = make_plan(job, site, {}, run_id, runtime="apptainer", image=sif, payload=payload)
    shell_dir = site.runs_path / f"shell-{run_id[:8]}"
    plan = replace(plan, run_dir=shell_dir)
    task = plan.tasks[0]
    for directory in (site.runs_path, shell_dir, plan.task_dir(task.index), plan.out_dir(0)):
        make_private_dir(directory, site.share_group)
    node.install(shell_dir, modes(site.share_group)[0])
    spec = plan.task_dir(task.index) / "spec.json"
    write_private(spec, json.dumps(task_spec(plan, task), indent=1).encode(), site.share_group)
    return plan


def on_node_prefix(site: Site, plan: Plan) -> list[str]:
    """The scheduler call that gives an interactive allocation with the job's resources."""
    res = plan.resources
    if site.scheduler == "slurm":
        argv = [site.slurm.srun, "--pty", f"--cpus-per-task={res.cpus}", f"--mem={res.memory}M"]
        argv.append(f"--time={max(1, res.walltime // 60)}")
        for flag, value in (
            ("--partition", site.slurm.partition),
            ("--account", site.slurm.account),
            ("--qos", site.slurm.qos),
            ("--constraint", site.slurm.constraint),
        ):
            if value:
                argv.append(f"{flag}={value}")
        if res.gpus:
            if site.slurm.gpu_request == "gres":
                argv.append(f"--gres={site.slurm.gres_name}:{res.gpus}")
            else:
                argv.append(f"--gpus={res.gpus}")
        return argv
    if site.scheduler == "htcondor":
        argv = ["condor_submit", "-interactive"]
        for key, value in (
            ("request_cpus", str(res.cpus)),
            ("request_memory", f"{res.memory}M"),
            ("request_gpus", str(res.gpus) if res.gpus else ""),
        ):
            if value:
                argv += ["-append", f"{key} = {value}"]
        return argv
    return []


def shell_command(
    site_ref: str,
    image: str | None,
    job_ref: str | None,
    command: Sequence[str],
    *,
    on_node: bool = False,
) -> tuple[list[str], Plan]:
    """The argv to exec for ``fcgtainer shell`` and the plan it stands for.

    Raises
    ------
    PreflightError
        If the shell would open here and this host has no Apptainer, or no image.
    """
    site = load_site(site_ref)
    if not (on_node and site.scheduler != "local") and not shutil.which(site.apptainer.binary):
        raise PreflightError(
            f"{site.apptainer.binary} is not on this host's PATH: `fcgtainer shell` opens "
            "the task's image with it",
            "install Apptainer (`fcgtainer doctor` says how), or use --on-node to open it on "
            "a compute node of a batch site",
        )
    plan = plan_shell(site, image, job_ref)
    write_secret_env(plan, os.environ)
    argv = shell_argv(plan, plan.tasks[0], command, os.environ)
    if on_node and plan.site.scheduler == "slurm":
        argv = on_node_prefix(plan.site, plan) + argv
    elif on_node and plan.site.scheduler == "htcondor":
        # An interactive HTCondor job is a login shell on the node, not a command: the
        # person runs the same `fcgtainer shell` there.
        argv = on_node_prefix(plan.site, plan)
    return argv, plan
