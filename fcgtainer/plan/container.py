"""The argv that runs one task: natively or in Apptainer. The only module that knows
Apptainer's flags; batch tasks and ``fcgtainer shell`` use the very same argv.

An Apptainer task is ``/bin/bash RUN_DIR/node/launch.sh OPTIONS -- PAYLOAD``: the launcher
(:mod:`fcgtainer.node`, a file copied into the run directory; values are passed as
arguments, never as shell text) decides on the compute node what only the node knows
(scratch, mounting or unpacking the image, CVMFS or cvmfsexec, GPUs), then runs
``apptainer exec --cleanenv --containall --no-eval ...`` in a cleared environment so that
only the allow-listed environment reaches the job.

The submitter's values (allow-listed variables, the site's ``env.set``) are never in an
argv: the argv names the run's 0600 env file, which the launcher (or, natively,
``node/env.sh``) reads with shell builtins.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

from fcgtainer import node
from fcgtainer.config.job import TaskParams
from fcgtainer.plan.tasks import Plan, contract_env, env_file, payload_argv, secret_env

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SMOKE_TIMEOUT = 120
Mode = Literal["exec", "shell"]


def binds(plan: Plan) -> list[tuple[str, str, bool]]:
    """``(source, target, readonly)`` of every bind a task needs, in a stable order.

    Node-local scratch and CVMFS are bound by the launcher, which resolves them on the node.
    """
    out: list[tuple[str, str, bool]] = []
    if plan.payload == "checkout":  # else the image's own copy of jobs/ runs, unshadowed
        out.append((plan.job.job_dir, plan.job.job_dir, True))
    out.append((str(plan.run_dir), str(plan.run_dir), False))
    out += [(path, path, True) for _, path in sorted(plan.inputs.items())]
    extra = [*plan.site.apptainer.binds, *plan.job.binds]
    for bind in extra:
        source = bind.source.replace("{job_dir}", plan.job.job_dir)
        out.append((source, bind.target or source, bind.readonly))
    seen: set[str] = set()
    unique = []
    for source, target, readonly in out:
        if target not in seen:
            seen.add(target)
            unique.append((source, target, readonly))
    return unique


def bind_spec(source: str, target: str, readonly: bool) -> str:
    """One ``source:target:ro|rw`` item."""
    return f"{source}:{target}:{'ro' if readonly else 'rw'}"


def cvmfs_repos(plan: Plan) -> list[str]:
    """The CVMFS repositories the task needs, except those the site marks ``none``."""
    return [repo for repo, _ in cvmfs_modes(plan)]


def cvmfs_modes(plan: Plan) -> list[tuple[str, str]]:
    """``(repository, mode)`` the task needs: ``host``, ``cvmfsexec`` or ``auto`` (unlisted)."""
    wanted = list(plan.job.cvmfs)
    if plan.job.lcg_view and "sft.cern.ch" not in wanted:
        wanted.append("sft.cern.ch")
    modes = plan.site.cvmfs.repositories
    found = [(repo, modes.get(repo, "auto")) for repo in wanted]
    return [(repo, mode) for repo, mode in found if mode != "none"]


def launch_options(
    plan: Plan, env: Mapping[str, str], home: str, mode: Mode, secrets: str | None = None
) -> list[str]:
    """The launcher's options for this plan: image, scratch, GPUs, CVMFS, binds, env.

    ``env`` holds the contract's values only; ``secrets`` is the path of the 0600 file with
    the submitter's values, which the launcher reads itself.
    """
    assert plan.image is not None, "an apptainer plan always has an image"
    site = plan.site
    opts = ["--mode", mode, "--apptainer", site.apptainer.binary, "--image", plan.image]
    opts += ["--unpack", site.apptainer.unpack, "--home", home]
    if site.scratch:
        opts += ["--scratch", site.scratch]
    gpus = plan.resources.gpus
    if gpus > 0:
        opts += ["--gpus", str(gpus)]
    repos = cvmfs_repos(plan)
    if repos:
        opts += ["--probe-timeout", str(max(1, round(site.cvmfs.probe_timeout)))]
        opts += ["--cvmfsexec", site.cvmfs.cvmfsexec.path]
        opts += ["--smoke-timeout", str(SMOKE_TIMEOUT)]
        if site.cvmfs.cvmfsexec.cache:
            opts += ["--cvmfs-cache", site.cvmfs.cvmfsexec.cache]
    flag = {"host": "--repo-host", "cvmfsexec": "--repo-cvmfsexec", "auto": "--repo"}
    for repo, repo_mode in cvmfs_modes(plan):
        opts += [flag[repo_mode], repo]
    if plan.job.lcg_view:
        opts += ["--lcg-view", plan.job.lcg_view]
    for source, target, readonly in binds(plan):
        opts += ["--bind", bind_spec(source, target, readonly)]
    for key, value in env.items():
        opts += ["--env", f"{key}={value}"]
    if secrets:
        opts += ["--env-file", secrets]
    return opts


def launcher_argv(
    plan: Plan,
    env: Mapping[str, str],
    home: str,
    command: Sequence[str],
    mode: Mode = "exec",
    secrets: str | None = None,
) -> list[str]:
    """The run directory's launcher with the plan's options, then the command in the image."""
    options = launch_options(plan, env, home, mode, secrets)
    return ["/bin/bash", node.launcher(plan.run_dir), *options, "--", *command]


def native_argv(
    plan: Plan, env: Mapping[str, str], home: str, command: Sequence[str], secrets: str | None
) -> list[str]:
    """``env -i`` with the contract's values, ``node/env.sh`` exporting the secrets file (by
    builtins, after the clearing), then ``command``."""
    outer = {"PATH": _native_path(), "HOME": home, **env}
    argv = ["env", "-i", *(f"{k}={v}" for k, v in outer.items())]
    if secrets:
        argv += ["/bin/bash", f"{plan.run_dir}/node/env.sh", secrets]
    return [*argv, *command]


@functools.cache
def _native_path() -> str:
    """A native task's PATH: this Python's directory, then the base system's."""
    return os.pathsep.join([os.path.dirname(sys.executable), BASE_PATH])


def task_argv(plan: Plan, task: TaskParams, host_env: Mapping[str, str] | None = None) -> list[str]:
    """The full argv of one task; only the allow-listed environment reaches the payload.

    The allow-listed values and the site's ``env.set`` are not in it: when there are any,
    the argv names the run's 0600 env file (:func:`fcgtainer.plan.tasks.env_file`), which
    ``write_run_dir`` writes.
    """
    return next(task_argvs(plan, [task], host_env))


def task_argvs(
    plan: Plan, tasks: Iterable[TaskParams], host_env: Mapping[str, str] | None = None
) -> Iterator[list[str]]:
    """:func:`task_argv` of each of ``tasks``, what they share worked out once."""
    host = os.environ if host_env is None else host_env
    secrets = secret_env(plan, host)
    home = host.get("HOME", str(Path.home()))
    secrets_path = str(env_file(plan)) if secrets else None
    for task in tasks:
        env = contract_env(plan, task, secrets)
        if plan.runtime == "native":
            yield native_argv(plan, env, home, payload_argv(plan, task), secrets_path)
        else:
            yield launcher_argv(plan, env, home, payload_argv(plan, task), secrets=secrets_path)


def shell_argv(
    plan: Plan,
    task: TaskParams,
    command: Sequence[str] = (),
    host_env: Mapping[str, str] | None = None,
) -> list[str]:
    """The argv of ``fcgtainer shell``: a task's argv with a shell (or ``command``) inside."""
    host = os.environ if host_env is None else host_env
    secrets = secret_env(plan, host)
    env = contract_env(plan, task, secrets)
    home = host.get("HOME", str(Path.home()))
    secrets_path = str(env_file(plan)) if secrets else None
    if plan.runtime == "native":
        shell = list(command) or [host.get("SHELL", "/bin/bash")]
        return native_argv(plan, env, home, shell, secrets_path)
    return launcher_argv(plan, env, home, list(command), mode="shell", secrets=secrets_path)
