"""What ``fcgtainer status`` costs on a 100,000-task run, and what its journal weighs.

    python benchmarks/status_bench.py [--tasks 100000] [--repeat 3] [--compare REV]
        [--profile]

A job with one axis of ``--tasks`` values is planned and submitted, for real (journal, run
directory with every task's files), to a SLURM site profile whose ``sbatch``, ``squeue``,
``sacct`` and ``scancel`` are stub scripts in a temporary directory: ``sbatch`` answers a
job id and ``squeue`` lists the whole array PENDING in one line, as SLURM prints a pending
array. So nothing runs and nothing needs a cluster, while the code under test is the real
one, including its one subprocess seam (the tool paths come from the site profile, as on a
real site). The local backend would start a supervisor that runs the tasks; SLURM stubs
keep every task pending, which is the state a poll of a big fresh run meets.

Measured, per source tree (this checkout; with ``--compare REV`` also the tree of that git
revision, extracted with ``git archive``, the two taking turns so that machine noise hits
both alike):

- submit: planning, the whole submit, and the time spent in the journal's write methods
  (``create_run``, ``set_backend_ids``, ``update_states``), in a child process;
- the journal file and its WAL after the submit;
- ``fcgtainer status RUN`` and ``fcgtainer status`` (all runs): process start to exit in a
  child process, peak RSS from ``wait4``. The first poll stores what the scheduler said for
  every task; later polls find nothing new. Figures are medians over ``--repeat`` polls
  after the first;
- the journal file and its WAL after the polls.

With ``--compare``, a copy of the older tree's journal is then opened by this checkout's
code: the time and sizes of the migration, when the layouts differ.

``--profile`` runs one more ``status RUN`` under cProfile and prints where the time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

SUBMIT_CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
from fcgtainer.runs import journal as journal_mod
from fcgtainer.runs.submit import plan_run, submit

spent = {"journal_write_s": 0.0}

def timed(fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent["journal_write_s"] += time.perf_counter() - start
    return wrapper

for name in ("create_run", "set_backend_ids", "update_states"):
    setattr(journal_mod.Journal, name, timed(getattr(journal_mod.Journal, name)))
tasks = int(sys.argv[1])
start = time.perf_counter()
plan = plan_run("big", "bench", [], max_tasks=tasks)
planned = time.perf_counter()
journal = journal_mod.Journal()
done = submit(plan, journal)
end = time.perf_counter()
path = journal.path
sizes = {
    "journal_bytes_open": path.stat().st_size,
    "wal_bytes_open": os.path.getsize(f"{path}-wal") if os.path.exists(f"{path}-wal") else 0,
}
print(json.dumps({
    "run_id": done.plan.run_id,
    "tasks": len(done.ids),
    "plan_s": planned - start,
    "submit_s": end - planned,
    "journal_write_s": spent["journal_write_s"],
    "process_s": end - t0,
    **sizes,
}))
"""


def stubs(root: Path, tasks: int) -> None:
    """A SLURM that queues everything and runs nothing, a site profile using it, a big job."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    scripts = {
        "sbatch": "cat >/dev/null\necho 4242\n",
        # squeue --array prints a pending array as one line: 4242_[0-99999]
        "squeue": (
            f"case \"$*\" in *--jobs=*) echo '4242_[0-{tasks - 1}]|PENDING|Priority';; esac\n"
        ),
        "sacct": "exit 0\n",
        "scancel": "exit 0\n",
        # room for the whole run in one array: what is measured is status, not the split
        "scontrol": "printf 'MaxArraySize = 4000001\\nMaxJobCount = 4000000\\n'\n",
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)
    (root / "sites").mkdir()
    tools = ", ".join(f"{name}: {bin_dir / name}" for name in scripts)
    (root / "sites" / "bench.yaml").write_text(
        "description: stub SLURM for status_bench (nothing runs)\n"
        "scheduler: slurm\nruntime: native\n"
        f"runs_dir: {root / 'runs'}\n"
        f"max_tasks: {max(tasks, 1)}\n"
        f"slurm: {{{tools}}}\n"
    )
    (root / "jobs" / "big").mkdir(parents=True)
    (root / "jobs" / "big" / "job.yaml").write_text(
        "description: one axis of many values\n"
        'command: [python3, -m, hello, --spec, "{spec}"]\n'
        f"matrix:\n  n: {{range: [0, {tasks}]}}\n"
        "resources: {cpus: 1, memory: 256MiB, walltime: '00:10:00'}\n"
    )


def run_child(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, str]:
    """Wall time, peak RSS (KiB, from ``wait4``) and stdout of one child process.

    ``cwd`` is not a source tree: ``python -c`` and ``-m`` put it first on ``sys.path``.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read() if proc.stdout else b""
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{err.decode()}")
    return wall, usage.ru_maxrss, out.decode()


def sizes(state: Path) -> dict[str, int]:
    """The journal file and its WAL, in bytes (0 when absent)."""
    path = state / "journal.sqlite"
    wal = Path(f"{path}-wal")
    return {
        "journal_bytes": path.stat().st_size,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
    }


class Tree:
    """One source tree under test, with its own state directory."""

    def __init__(self, label: str, src: Path, root: Path) -> None:
        self.label = label
        self.src = src
        self.root = root
        self.state = root / f"state-{label}"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(src),
            "FCGTAINER_STATE_DIR": str(self.state),
            "FCGTAINER_SITES": str(root / "sites"),
            "FCGTAINER_JOBS": str(root / "jobs"),
            "COLUMNS": "120",
        }
        self.result: dict[str, Any] = {"tree": label}
        self.polls: dict[str, list[tuple[float, int]]] = {"status_run": [], "status_all": []}
        self.run_id = ""

    def submit(self, tasks: int) -> None:
        wall, rss, out = run_child(
            [sys.executable, "-c", SUBMIT_CHILD, str(tasks)], self.env, self.root
        )
        figures = json.loads(out.strip().splitlines()[-1])
        self.run_id = figures.pop("run_id")
        self.result["submit"] = {**figures, "wall_s": wall, "peak_rss_mb": rss / 1024}
        self.result["after_submit"] = sizes(self.state)

    def poll(self, which: str) -> None:
        args = ["status", self.run_id] if which == "status_run" else ["status"]
        wall, rss, _ = run_child([sys.executable, "-m", "fcgtainer", *args], self.env, self.root)
        self.polls[which].append((wall, rss))

    def summary(self) -> dict[str, Any]:
        for which, polls in self.polls.items():
            later = polls[1:] or polls
            self.result[which] = {
                "first_s": polls[0][0],
                "first_peak_rss_mb": polls[0][1] / 1024,
                "median_s": statistics.median(p[0] for p in later),
                "peak_rss_mb": max(p[1] for p in later) / 1024,
                "polls": len(polls),
            }
        self.result["after_polls"] = sizes(self.state)
        tasks = self.result["submit"]["tasks"]
        self.result["journal_bytes_per_task"] = self.result["after_polls"]["journal_bytes"] / tasks
        return self.result

    def profile(self, top: int = 25) -> str:
        prof = self.state / "status.prof"
        argv = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "fcgtainer"]
        run_child([*argv, "status", self.run_id], self.env, self.root)
        script = (
            "import pstats, sys; s = pstats.Stats(sys.argv[1]); "
            f"s.sort_stats('cumulative').print_stats({top}); "
            f"s.sort_stats('tottime').print_stats({top})"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, str(prof)], capture_output=True, text=True, check=True
        )
        return done.stdout


MIGRATE_CHILD = r"""
import json, sys, time
from pathlib import Path
from fcgtainer.runs.journal import Journal
start = time.perf_counter()
Journal(Path(sys.argv[1])).close()
print(json.dumps({"migrate_s": time.perf_counter() - start}))
"""


def migrate(old: Tree, new: Tree) -> dict[str, Any]:
    """Open a copy of the older tree's journal with this tree's code: the migration."""
    work = new.root / "migrate"
    work.mkdir()
    path = work / "journal.sqlite"
    shutil.copy2(old.state / "journal.sqlite", path)
    before = path.stat().st_size
    wall, rss, out = run_child([sys.executable, "-c", MIGRATE_CHILD, str(path)], new.env, new.root)
    return {
        **json.loads(out.strip().splitlines()[-1]),
        "wall_s": wall,
        "peak_rss_mb": rss / 1024,
        "journal_bytes_before": before,
        **sizes(work),
    }


def extract(rev: str, dest: Path) -> Path:
    """The source tree of git revision ``rev`` of this checkout, in ``dest``."""
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def main() -> None:
    """Submit, poll, measure; print the figures as JSON (and the profiles)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks in the run")
    parser.add_argument("--repeat", type=int, default=3, help="polls after the first")
    parser.add_argument("--compare", metavar="REV", help="also measure this git revision")
    parser.add_argument("--profile", action="store_true", help="cProfile one status RUN")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    opts = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="status-bench-"))
    try:
        stubs(root, opts.tasks)
        trees = [Tree("this", ROOT, root)]
        if opts.compare:
            trees.insert(0, Tree(opts.compare, extract(opts.compare, root / "before"), root))
        for tree in trees:
            tree.submit(opts.tasks)
        for _ in range(opts.repeat + 1):  # the trees take turns
            for tree in trees:
                tree.poll("status_run")
                tree.poll("status_all")
        figures: dict[str, Any] = {"tasks": opts.tasks, "trees": [t.summary() for t in trees]}
        if opts.compare:
            figures["migrate_older_journal"] = migrate(trees[0], trees[1])
        print(json.dumps(figures, indent=1))
        if opts.profile:
            for tree in trees:
                print(f"--- cProfile of `fcgtainer status RUN`, tree {tree.label}")
                print(tree.profile())
    finally:
        if opts.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
