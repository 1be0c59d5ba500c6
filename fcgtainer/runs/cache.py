"""Cached results of campaign tasks: a task whose key matches a succeeded task is not rerun.

A task's key hashes what decides its result: its step, command, params, inputs, runtime, the
image's sha256, the payload code (image, or the checkout's commit and uncommitted changes)
and the keys of the upstream tasks it reads, so a change reruns the task and everything
downstream of it. The site's runs directory keeps an index, ``.cache/index.jsonl``, naming
the run and task that produced each key (one appended line per task: no file per task); a
hit is used only while that run's manifest records the key, the task's marker says 0 and
its output directory exists. A cached task's ``out/<i>`` is a link to that output, its marker 0.
Jobs without ``steps:`` are not cached (a one-step job runs as it always has).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fcgtainer.plan.tasks import Plan
from fcgtainer.private import make_private_dir, write_private
from fcgtainer.runs.rundir import read_marker

COVERS = (
    "step",
    "command",
    "params",
    "inputs",
    "runtime",
    "image sha256",
    "payload code",
    "upstream keys",
)


def task_keys(plan: Plan, record: Mapping[str, Any]) -> dict[int, str]:
    """Every task's key (run-wide index -> sha256), upstream tasks first."""
    payload = dict(record.get("payload") or {})
    payload.pop("job_dir", None)  # where the checkout is does not change what it computes
    common = {
        "runtime": plan.runtime,
        "image": (record.get("image") or {}).get("sha256"),
        "payload": payload,
    }
    keys: dict[int, str] = {}
    for step in plan.step_plans():
        sub = step.plan
        for task in sub.tasks:
            upstream = sub.upstream.get(task.index, {})
            blob = {
                **common,
                "step": step.name,
                "command": list(sub.job.command),
                "params": {**sub.job.params, **task.values},
                "inputs": dict(sub.inputs),
                "upstream": {name: [keys[j] for j in js] for name, js in upstream.items()},
            }
            text = json.dumps(blob, sort_keys=True, default=str)
            keys[task.index] = hashlib.sha256(text.encode()).hexdigest()
    return keys


def index_path(plan: Plan) -> Path:
    """The site's cache index: one JSON line per task run, ``{key, run_dir, task}``."""
    return plan.site.runs_path / ".cache" / "index.jsonl"


def _index(plan: Plan) -> dict[str, tuple[Path, int]]:
    """The newest run of each key (later lines win)."""
    found: dict[str, tuple[Path, int]] = {}
    try:
        lines = index_path(plan).read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        try:
            data = json.loads(line)
            found[str(data["key"])] = (Path(data["run_dir"]), int(data["task"]))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a full disk: ignored
    return found


def _recorded_keys(run_dir: Path) -> Mapping[str, str]:
    try:
        data = json.loads((run_dir / "manifest.json").read_text())
        keys = data["cache"]["keys"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return keys if isinstance(keys, dict) else {}


def find(plan: Plan, keys: Mapping[int, str]) -> dict[int, tuple[Path, int]]:
    """The tasks whose results exist already (run directory and task that hold them).

    A hit counts only while that run's manifest records the same key for that task, its
    marker says 0 and its output directory exists.
    """
    index = _index(plan)
    manifests: dict[Path, Mapping[str, str]] = {}
    found = {}
    for task, key in keys.items():
        hit = index.get(key)
        if hit is None:
            continue
        run_dir, source = hit
        if run_dir not in manifests:
            manifests[run_dir] = _recorded_keys(run_dir)
        if manifests[run_dir].get(str(source)) != key or read_marker(run_dir, source) != 0:
            continue
        if (run_dir / "out" / str(source)).is_dir():
            found[task] = hit
    return found


def record(
    plan: Plan, keys: Mapping[int, str], reused: Mapping[int, tuple[Path, int]]
) -> dict[str, Any]:
    """What the manifest says about the cache: the keys, what they cover, what was reused."""
    return {
        "covers": list(COVERS),
        "keys": {str(i): k for i, k in sorted(keys.items())},
        "reused": {str(i): {"run_dir": str(d), "task": j} for i, (d, j) in sorted(reused.items())},
    }


def apply(plan: Plan, keys: Mapping[int, str], reused: Mapping[int, tuple[Path, int]]) -> None:
    """Link the reused results in, and index the tasks that run now under their keys.

    The index then names the newest run of each key; a lookup uses it only once that run's
    task succeeded (with ``--force``, a rerun that fails hides the older result).
    """
    group = plan.site.share_group
    lines = []
    for index, key in keys.items():
        if index not in reused:
            entry = {"key": key, "run_dir": str(plan.run_dir), "task": index}
            lines.append(json.dumps(entry) + "\n")
            continue
        source_dir, source = reused[index]
        tdir, out = plan.task_dir(index), plan.out_dir(index)
        with contextlib.suppress(OSError):
            out.rmdir()  # an empty directory of an earlier, interrupted submit
        os.symlink(source_dir / "out" / str(source), out)
        make_private_dir(tdir, group)
        note = json.dumps({"run_dir": str(source_dir), "task": source}).encode()
        write_private(tdir / "cached", note, group)
        write_private(tdir / "exit_code", b"0\n", group)
    if lines:
        path = index_path(plan)
        make_private_dir(path.parent, group)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640 if group else 0o600)
        try:
            os.write(fd, "".join(lines).encode())  # one append: whole lines, never interleaved
        finally:
            os.close(fd)
