"""The argv that runs one task: natively or in Apptainer. The only module that knows
Apptainer's flags; batch tasks and ``fcgtainer shell`` use the very same argv."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from fcgtainer.job import JobBind, TaskParams
from fcgtainer.plan import Plan, payload_argv, payload_env
from fcgtainer.site import Bind

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def binds(plan: Plan) -> list[tuple[str, str, bool]]:
    """``(source, target, readonly)`` for every bind a task needs, in a stable order."""
    out: list[tuple[str, str, bool]] = [
        (plan.job.job_dir, plan.job.job_dir, True),
        (str(plan.run_dir), str(plan.run_dir), False),
    ]
    out += [(path, path, True) for _, path in sorted(plan.inputs.items())]
    extra: list[Bind | JobBind] = [*plan.site.apptainer.binds, *plan.job.binds]
    for bind in extra:
        source = bind.source.replace("{job_dir}", plan.job.job_dir)
        out.append((source, bind.target or source, bind.readonly))
    if plan.site.scratch:
        out.append((plan.site.scratch, plan.site.scratch, False))
    seen: set[str] = set()
    unique = []
    for source, target, readonly in out:
        if target not in seen:
            seen.add(target)
            unique.append((source, target, readonly))
    return unique


def bind_arg(items: list[tuple[str, str, bool]]) -> str:
    """Binds as one ``--bind`` value (paths were checked for ``,`` and ``:`` on load)."""
    return ",".join(f"{s}:{t}:{'ro' if ro else 'rw'}" for s, t, ro in items)


def apptainer_argv(plan: Plan, env: Mapping[str, str], *, interactive: bool = False) -> list[str]:
    """``apptainer exec|shell`` with the task's binds, clean environment and GPUs."""
    assert plan.image is not None, "an apptainer plan always has an image"
    argv = [plan.site.apptainer.binary, "shell" if interactive else "exec", "--cleanenv"]
    argv.append("--no-eval")
    if plan.resources.gpus > 0:
        argv.append("--nv")
    argv += ["--bind", bind_arg(binds(plan))]
    argv.append(plan.image)
    return argv


def task_argv(plan: Plan, task: TaskParams, host_env: Mapping[str, str] | None = None) -> list[str]:
    """The full argv of one task, starting with ``env -i`` so nothing else leaks in."""
    host = os.environ if host_env is None else host_env
    env = payload_env(plan, task, host)
    home = host.get("HOME", str(Path.home()))
    if plan.runtime == "native":
        path = os.pathsep.join([str(Path(sys.executable).parent), BASE_PATH])
        outer = {"PATH": path, "HOME": home, **env}
        return ["env", "-i", *(f"{k}={v}" for k, v in outer.items()), *payload_argv(plan, task)]
    outer = {"PATH": BASE_PATH, "HOME": home}
    outer.update({f"APPTAINERENV_{k}": v for k, v in env.items()})
    return [
        "env",
        "-i",
        *(f"{k}={v}" for k, v in outer.items()),
        *apptainer_argv(plan, env),
        *payload_argv(plan, task),
    ]
