"""Submitting the 300-task FastCaloGAN campaign: fcgtainer vs 300 sbatch vs Snakemake.

Measures, on the testbed's SLURM, the time from command start until all 300 tasks are in
the queue (``squeue --me --array`` shows 300 entries) for

- ``fcgtainer submit`` of the training step alone (the shipped job without ``steps:``: one
  ``sbatch --array``);
- ``fcgtainer submit fastcalogan``, the shipped three-step campaign (train 300 -> validate
  300 -> assemble 1: three ``sbatch`` with dependencies), until all 601 are queued;
- 300 separate ``sbatch`` calls from a bash loop (how the original per-slice scripts submit);
- submitit's ``AutoExecutor.map_array`` (one ``sbatch --array`` of pickled calls);
- Snakemake with snakemake-executor-plugin-slurm in array mode (``--slurm-array-jobs=all``);

and the scheduler calls one ``fcgtainer status`` poll makes for the 300 tasks (SLURM and
HTCondor). Every approach asks for the same resources (2 CPUs, 3 GiB, 2 h per task). Run it
inside the testbed as the ordinary user::

    tests/testbed/testbed exec --user -- python3 /work/main/benchmarks/submit_bench.py \
        --snakemake ~/snake/bin/snakemake --repeat 3

The queue is emptied (``scancel --me``) before and after every measurement.
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
import textwrap
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TASKS = 300
DEADLINE_S = 600.0


def queued() -> int:
    """How many of the user's jobs and array tasks SLURM lists."""
    out = subprocess.run(
        ["squeue", "--me", "--noheader", "--array", "--format=%i"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return len(out.split())


def clear() -> None:
    """Cancel every job of the user and wait until the queue is empty."""
    subprocess.run(["scancel", "--me"], check=False)
    deadline = time.monotonic() + 120
    while queued() and time.monotonic() < deadline:
        time.sleep(0.5)


def until_queued(
    argv: Sequence[str],
    cwd: Path,
    log: Path,
    env: dict[str, str] | None = None,
    tasks: int = TASKS,
) -> float:
    """Seconds from starting ``argv`` until ``tasks`` tasks are queued; then it is stopped."""
    start = time.perf_counter()
    child = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),  # noqa: SIM115 - closed with the child
        start_new_session=True,
    )
    try:
        while queued() < tasks:
            if child.poll() not in (None, 0):
                raise RuntimeError(f"{argv[0]} exited {child.returncode}: see {log}")
            if time.perf_counter() - start > DEADLINE_S:
                raise RuntimeError(f"{argv[0]}: {queued()} of {tasks} queued after {DEADLINE_S} s")
            time.sleep(0.02)
        return time.perf_counter() - start
    finally:
        if child.poll() is None:
            os.killpg(child.pid, 15)
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, 9)
                child.wait()
        clear()


def one_step_job(work: Path) -> Path:
    """The shipped job without ``steps:`` (its 300 training tasks, one array)."""
    import yaml

    data = yaml.safe_load((REPO / "jobs" / "fastcalogan" / "job.yaml").read_text())
    data.pop("steps")
    path = work / "fastcalogan" / "job.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    code = path.parent / "fastcalogan"  # the payload's code beside it: job.yaml's check runs it
    if not code.exists():
        code.symlink_to(REPO / "jobs" / "fastcalogan" / "fastcalogan")
    return path


def fcgtainer(work: Path, job: str, tasks: int) -> float:
    """``fcgtainer submit JOB --site testbed-slurm`` until its ``tasks`` are queued."""
    env = {**os.environ, "FCGTAINER_STATE_DIR": str(work / f"state-{tasks}")}
    cli = shutil.which("fcgtainer") or "fcgtainer"
    argv = [cli, "submit", job, "--site", "testbed-slurm"]
    return until_queued(argv, REPO, work / "fcgtainer.log", env, tasks)


def separate_sbatch(work: Path) -> float:
    """300 ``sbatch`` calls from a bash loop, one per particle and slice."""
    script = textwrap.dedent(f"""\
        for p in photon electron pion; do
          for e in $(seq 0 99); do
            sbatch --parsable --job-name=fcg-$p-$e --partition=debug --cpus-per-task=2 \\
              --mem=3072M --time=02:00:00 --output={work}/slice-%j.out \\
              --wrap="sleep 600" > /dev/null
          done
        done
        """)
    return until_queued(["bash", "-c", script], work, work / "sbatch.log")


def _timed(argv: Sequence[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Seconds and peak MB (``wait4``) of a command run to its end, and its stdout."""
    start = time.perf_counter()
    child = subprocess.Popen(list(argv), env=env, stdout=subprocess.PIPE, text=True)
    out = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise RuntimeError(f"{argv[0]} exited {child.returncode}: {out[-500:]}")
    return seconds, usage.ru_maxrss / 1024, out


def lamarr_100k(work: Path) -> dict[str, Any]:
    """``submit lamarr --set runs=1..100000`` (100,002 tasks, held) and one ``status``.

    The arrays go held (``--hold``), so nothing runs; SLURM takes what fits under its
    ``MaxJobCount`` and the rest waits for the run's feeder. Measured: the submit command
    from start to exit, its peak memory, and the same for one ``status RUN`` poll.
    """
    import yaml

    site = yaml.safe_load((REPO / "sites" / "testbed-slurm.yaml").read_text())
    site["runs_dir"] = str(work / "runs")
    site["slurm"]["extra_flags"] = ["--hold"]
    site_file = work / "held.yaml"
    site_file.write_text(yaml.safe_dump(site))
    env = {**os.environ, "FCGTAINER_STATE_DIR": str(work / "state-100k")}
    cli = shutil.which("fcgtainer") or "fcgtainer"
    argv = [cli, "submit", "lamarr", "--site", str(site_file)]
    argv += ["--set", "runs=1..100000", "--max-tasks", "100002"]
    try:
        submit_s, submit_mb, out = _timed(argv, env)
        run = out.split("submitted run ", 1)[1].split()[0]
        status_s, status_mb, _ = _timed([cli, "status", run], env)
        subprocess.run([cli, "cancel", run], env=env, capture_output=True, check=False)
    finally:
        clear()
    return {
        "tasks": 100_002,
        "submit_s": round(submit_s, 2),
        "submit_peak_mb": round(submit_mb),
        "status_s": round(status_s, 2),
        "status_peak_mb": round(status_mb),
    }


def submitit(work: Path, python: str) -> float:
    """submitit's ``map_array`` of 300 calls (one ``sbatch --array``), from a script's start."""
    script = work / "submitit_run.py"
    script.write_text(
        textwrap.dedent(f"""\
        import submitit
        executor = submitit.AutoExecutor(folder="{work}/submitit-%j", cluster="slurm")
        executor.update_parameters(
            slurm_partition="debug", cpus_per_task=2, mem_gb=3, timeout_min=120,
            slurm_array_parallelism={TASKS},
        )
        executor.map_array(abs, range({TASKS}))
        """)
    )
    return until_queued([python, str(script)], work, work / "submitit.log")


def snakemake(work: Path, binary: str) -> float:
    """Snakemake with the SLURM executor plugin, array mode, 300 jobs of one rule."""
    (work / "Snakefile").write_text(
        textwrap.dedent("""\
        PARTICLES = ["photon", "electron", "pion"]
        rule all:
            input: expand("out/{p}_{e}.done", p=PARTICLES, e=range(100))
        rule train:
            output: "out/{p}_{e}.done"
            resources: cpus_per_task=2, mem_mb=3072, runtime=120, slurm_partition="debug"
            shell: "sleep 600; touch {output}"
        """)
    )
    argv = [
        binary,
        "--executor",
        "slurm",
        "--slurm-array-jobs=all",
        "--jobs",
        str(TASKS),
        "--latency-wait",
        "5",
        "--slurm-no-account",
        # hand all 300 jobs to the plugin at once: with the default 100/1s it waits for the
        # rest of the rule's jobs before submitting an array, and stalls at 200 tasks
        "--max-jobs-per-timespan",
        "1000/1s",
        "--slurm-logdir",
        str(work / "slurm-logs"),
    ]
    return until_queued(argv, work, work / "snakemake.log")


def calls_per_poll(site: str, work: Path) -> dict[str, Any]:
    """Submit the campaign through fcgtainer and count scheduler calls of one status poll."""
    sys.path.insert(0, str(REPO))
    os.environ["FCGTAINER_STATE_DIR"] = str(work / f"state-{site}")
    from fcgtainer import proc
    from fcgtainer.backends import get_backend
    from fcgtainer.runs import monitor
    from fcgtainer.runs import submit as runs
    from fcgtainer.runs.journal import Journal

    calls: list[str] = []
    journal = Journal()
    plan = runs.plan_run("fastcalogan", site, [])
    backend = get_backend(plan.site)
    if plan.site.scheduler == "slurm":

        def runner(argv: Sequence[str], **kwargs: Any) -> proc.Completed:
            calls.append(Path(argv[0]).name)
            return proc.run(argv, **kwargs)

        backend._run = runner
    else:
        real = backend._schedd

        class Counting:
            def __init__(self, schedd: Any) -> None:
                self._schedd = schedd

            def __getattr__(self, name: str) -> Any:
                calls.append(name)
                return getattr(self._schedd, name)

        backend._schedd = lambda: Counting(real())  # type: ignore[method-assign]
    start = time.perf_counter()
    runs.submit(plan, journal, backend)
    submitted = time.perf_counter() - start
    submit_calls = len(calls)
    monitor.get_backend = lambda _site: backend  # type: ignore[assignment]
    polls = []
    for _ in range(3):
        mark = len(calls)
        tasks = monitor.refresh(journal, journal.run(plan.run_id))
        polls.append(dict(Counter(calls[mark:])))
        time.sleep(1)
    backend.cancel([t.backend_id for t in tasks if t.backend_id])
    return {
        "site": site,
        "tasks": len(plan.tasks),
        "submit_calls": submit_calls,
        "submit_s": round(submitted, 3),
        "calls_per_poll": polls,
    }


def main() -> int:
    """Run every measurement ``--repeat`` times and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--snakemake", default=shutil.which("snakemake") or "")
    parser.add_argument("--submitit", default="", help="a python that has submitit")
    parser.add_argument("--scale", action="store_true", help="also the 100,000-run Lamarr submit")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    clear()
    times: dict[str, list[float]] = {
        "fcgtainer": [],
        "fcgtainer campaign": [],
        "sbatch x300": [],
        "submitit": [],
        "snakemake": [],
    }
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            times["fcgtainer"].append(fcgtainer(work, str(one_step_job(work)), TASKS))
            times["fcgtainer campaign"].append(fcgtainer(work, "fastcalogan", 2 * TASKS + 1))
            times["sbatch x300"].append(separate_sbatch(work))
            if args.submitit:
                times["submitit"].append(submitit(work, args.submitit))
            if args.snakemake:
                times["snakemake"].append(snakemake(work, args.snakemake))
    medians = {k: statistics.median(v) for k, v in times.items() if v}
    result: dict[str, Any] = {
        "tasks": TASKS,
        "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "median_s": {k: round(v, 3) for k, v in medians.items()},
        "ratio_to_fcgtainer": {k: round(v / medians["fcgtainer"], 1) for k, v in medians.items()},
    }
    if args.scale:
        with tempfile.TemporaryDirectory() as tmp:
            result["lamarr_100k"] = lamarr_100k(Path(tmp))
            result["lamarr_100k"]["submit_vs_300"] = round(
                result["lamarr_100k"]["submit_s"] / medians["fcgtainer"], 1
            )
    with tempfile.TemporaryDirectory() as tmp:
        result["status"] = [
            calls_per_poll("testbed-slurm", Path(tmp)),
            calls_per_poll("testbed-htcondor", Path(tmp)),
        ]
    clear()
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
