"""The run directory: specs, argv files, the wrapper, logs and exit-code markers.

Everything here is private to the submitter whatever the umask: directories 0700 and files
0600 (0750 / 0640 when the site sets ``share_group: true``). Nothing the wrapper executes or
reads as code (``wrapper.sh``, ``argv``) is writable by anyone else.

Layout (on a filesystem the compute nodes share)::

    RUN_DIR/manifest.json         job and site as loaded, versions, image
    RUN_DIR/wrapper.sh            the job wrapper every backend runs
    RUN_DIR/node/                 the launcher and the checks it shares (fcgtainer.node)
    RUN_DIR/table/                the task table: every task's spec, argv and bounds
                                  (fcgtainer.tasktable), copied into tasks/<i>/ by the
                                  wrapper when the task starts:
    RUN_DIR/tasks/<i>/spec.json   parameters, as data
    RUN_DIR/tasks/<i>/argv        the task's argv, NUL-separated
    RUN_DIR/tasks/<i>/task.log    stdout and stderr of every attempt (appended)
    RUN_DIR/tasks/<i>/exit_code   the marker: written last, atomically, by the wrapper
    RUN_DIR/out/<i>/              the payload's output and working directory (made by the task)
    RUN_DIR/scheduler/            what the scheduler itself writes of a task (its stdout and
                                  stderr files; a campaign's: RUN_DIR/steps/<step>/)
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fcgtainer import node, tasktable
from fcgtainer.plan.container import task_argvs
from fcgtainer.plan.tasks import Plan, encode_env, env_file, secret_env, task_spec
from fcgtainer.private import make_private_dir, modes, private_umask, write_private

#: Where a step's spec lines were already written (by the job's check): step -> (file,
#: byte offset of its first task's line).
SpecLines = Mapping[str, tuple[Path, int]]


def write_run_dir(
    plan: Plan,
    manifest: Mapping[str, Any],
    host_env: Mapping[str, str],
    specs: SpecLines | None = None,
) -> None:
    """Write everything the tasks need before the scheduler sees them."""
    group = plan.site.share_group
    dir_mode, _ = modes(group)
    make_private_dir(plan.site.runs_path, group)
    make_private_dir(plan.run_dir, group)
    with private_umask(group):
        write_private(
            plan.run_dir / "manifest.json",
            json.dumps(manifest, indent=2, default=str).encode(),
            group,
        )
        node.install(plan.run_dir, dir_mode)
        write_secret_env(plan, host_env)
        for sub in ("tasks", "out", "scheduler"):
            make_private_dir(plan.run_dir / sub, group)
        for step in plan.steps:  # SLURM writes a campaign step's own output there
            make_private_dir(plan.run_dir / "steps", group)
            make_private_dir(plan.run_dir / "steps" / step.name, group)
        write_tasks([step.plan for step in plan.step_plans()], host_env, specs)


def write_tasks(
    plans: Sequence[Plan],
    host_env: Mapping[str, str],
    specs: SpecLines | None = None,
) -> None:
    """The task table (:mod:`fcgtainer.tasktable`) of every task of ``plans`` (a run's
    steps): a few chunk files, whatever the task count, written chunk by chunk (the
    memory of one chunk, not of the run). A step in ``specs`` has its spec lines read from
    there (the job's check wrote them) instead of serialised again. ``tasks/<i>/`` and
    ``out/<i>/`` are the task's to make when it starts (the scheduler writes its own
    output to ``scheduler/`` or ``steps/<step>/``).
    """
    if not plans:
        return
    group = plans[0].site.share_group
    table = plans[0].run_dir / "table"
    make_private_dir(table, group)
    kinds = ("spec", "argv", "task")

    def lines() -> Iterator[tuple[int, tuple[bytes, bytes, bytes]]]:
        for plan in plans:
            bounds = (
                plan.job.retries,
                plan.job.max_requeues,
                effective_walltime(plan),
                signal_margin(plan),
            )
            argvs = task_argvs(plan, plan.tasks, host_env)
            spec_lines = _spec_lines(plan, (specs or {}).get(plan.step))
            for task, argv, spec in zip(plan.tasks, argvs, spec_lines, strict=True):
                ups = sorted({j for js in plan.upstream.get(task.index, {}).values() for j in js})
                yield (
                    task.index,
                    (
                        spec,
                        tasktable.argv_line(argv),
                        tasktable.task_line(
                            tasktable.Row(*bounds, tuple(ups), plan.wait_upstream and bool(ups))
                        ),
                    ),
                )

    ordered = sorted(lines(), key=lambda item: item[0]) if _unordered(plans) else lines()
    for chunk, group_lines in itertools.groupby(ordered, key=lambda i: i[0] // tasktable.CHUNK):
        rows = list(group_lines)
        for k, kind in enumerate(kinds):
            content = b"".join(c for _, c in tasktable.chunks((i, ls[k]) for i, ls in rows))
            write_private(table / f"{chunk}.{kind}", content, group)


def _spec_lines(plan: Plan, written: tuple[Path, int] | None) -> Iterator[bytes]:
    """The table's spec line of each task of ``plan``, in order: read back from where the
    job's check wrote them (the same :func:`tasktable.spec_line`), or made here."""
    if written is None:
        yield from (tasktable.spec_line(task_spec(plan, task)) for task in plan.tasks)
        return
    path, offset = written
    with path.open("rb") as lines:
        lines.seek(offset)
        for _ in plan.tasks:
            yield lines.readline()


def _unordered(plans: Sequence[Plan]) -> bool:
    """Whether the steps' tasks are not already in index order (they are, as planned)."""
    indices = [t.index for plan in plans for t in plan.tasks]
    return any(b <= a for a, b in itertools.pairwise(indices))


def read_upstream(
    run_dir: Path, index: int, table: Mapping[int, tasktable.Row] | None = None
) -> list[int]:
    """The upstream tasks (run-wide indices) a campaign task reads; empty for others.

    Its own file once it started, else the task table (``table``: the run's rows, read once
    by a caller that asks for many tasks).
    """
    try:
        with open(f"{run_dir}/tasks/{index}/upstream") as fh:  # no Path: called per task
            text = fh.read()
    except (FileNotFoundError, NotADirectoryError):
        found = table.get(index) if table is not None else tasktable.row(run_dir, index)
        return list(found.upstream) if found else []
    return [int(w) for w in text.split() if w.isdigit()]


def waits_on_upstream(
    run_dir: Path, index: int, table: Mapping[int, tasktable.Row] | None = None
) -> bool:
    """Whether a campaign task's step waits (``on_upstream_failure: wait``) rather than fails."""
    if os.path.exists(f"{run_dir}/tasks/{index}/upstream_wait"):
        return True
    found = table.get(index) if table is not None else tasktable.row(run_dir, index)
    return bool(found and found.wait)


def bundle_queues(run_dir: Path) -> dict[int, int]:
    """The bundled tasks waiting their turn: each one -> the task its bundle runs now.

    ``node/bundle.sh`` writes the task it is running to ``tasks/<leader>/bundle_now``; the
    bundle's tasks after that one have not started, whatever the scheduler says of the job.
    """
    waiting: dict[int, int] = {}
    for leader, members in tasktable.read_bundles(run_dir).items():
        try:
            now = int(Path(f"{run_dir}/tasks/{leader}/bundle_now").read_text())
        except (OSError, ValueError):
            continue
        if now in members:
            waiting.update(dict.fromkeys(members[members.index(now) + 1 :], now))
    return waiting


def effective_walltime(plan: Plan) -> int:
    """The time a task gets: its walltime, or less where an HTCondor site's MaxRuntime or
    JobFlavour grants less (the wrapper's checkpoint timer counts from this)."""
    granted = plan.site.htcondor.granted_runtime if plan.site.scheduler == "htcondor" else None
    return min(plan.resources.walltime, granted or plan.resources.walltime)


def signal_margin(plan: Plan) -> int:
    """Seconds before the walltime at which a checkpointing task is asked to save (0: never)."""
    if not plan.job.checkpoint.enabled:
        return 0
    return max(plan.job.checkpoint.signal_margin, 1)


def write_secret_env(plan: Plan, host_env: Mapping[str, str]) -> None:
    """Write the submitter's values for the tasks to the run's 0600 env file, if any."""
    secrets = secret_env(plan, host_env)
    if secrets:
        make_private_dir(plan.run_dir, plan.site.share_group)
        write_private(env_file(plan), encode_env(secrets), mode=0o600)


def read_marker(run_dir: Path, index: int) -> int | None:
    """The exit code the wrapper wrote for a task, or None while there is none."""
    try:
        text = (run_dir / "tasks" / str(index) / "exit_code").read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return int(text)
    except ValueError:
        return None


def read_markers(run_dir: Path, indices: Iterable[int]) -> dict[int, int | None]:
    """:func:`read_marker` for many tasks at once: one open per task and no path objects.

    A poll of a big run reads every unfinished task's marker; building a ``Path`` per task
    cost several times the system calls.
    """
    base = f"{run_dir}/tasks/"
    out: dict[int, int | None] = {}
    for index in indices:
        try:
            fd = os.open(f"{base}{index}/exit_code", os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            out[index] = None
            continue
        try:
            text = os.read(fd, 64)
        finally:
            os.close(fd)
        try:
            out[index] = int(text.strip())
        except ValueError:
            out[index] = None
    return out


def log_path(run_dir: Path, index: int) -> Path:
    """Where a task's combined stdout and stderr go."""
    return run_dir / "tasks" / str(index) / "task.log"


def attempts(run_dir: Path, index: int) -> int:
    """How many attempts the wrapper recorded for a task."""
    try:
        return len((run_dir / "tasks" / str(index) / "attempts").read_text().splitlines())
    except FileNotFoundError:
        return 0


def requeues(run_dir: Path, index: int) -> int:
    """How many times a task was requeued after a checkpoint (exit 85), on any backend."""
    return _count(run_dir / "tasks" / str(index) / "requeues", 0)


def max_requeues(run_dir: Path, index: int) -> int:
    """The task's bound on requeues (the job's ``max_requeues``)."""
    path = run_dir / "tasks" / str(index) / "max_requeues"
    if not path.exists():
        found = tasktable.row(run_dir, index)
        return found.max_requeues if found else 20
    return _count(path, 20)


def _count(path: Path, default: int) -> int:
    try:
        return int(path.read_text().strip() or default)
    except (FileNotFoundError, ValueError):
        return default
