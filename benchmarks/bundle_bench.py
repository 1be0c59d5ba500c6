"""300 trivial tasks in the Debian image, end to end on the testbed's SLURM: bundled or not.

Seconds from the command's start until every task has ended, for

- ``fcgtainer submit`` of 300 ``hello`` tasks in an Apptainer image with ``bundle: 25``
  (12 array tasks, each running 25 tasks in turn in one container start);
- the same 300 tasks unbundled (300 array tasks);
- Snakemake with snakemake-executor-plugin-slurm, 300 jobs of one rule, each
  ``apptainer exec IMAGE touch OUTPUT`` (``--snakemake PATH``; left out without it), one
  ``sbatch`` per job: the plugin's array mode (``--slurm-array-jobs``, plugin 2.8.0) ran the
  first job's wildcards in every array task here, so 299 of the 300 outputs were missing.

Run it inside the testbed as the ordinary user, with an image that has python3 (the smoke
image the integration tests build will do)::

    tests/testbed/testbed exec --user -- ~/venv/bin/python /work/main/benchmarks/bundle_bench.py \
        --image /var/cache/fcgtainer-tests/images/standalone-debian-HASH.sif \
        --snakemake ~/snake/bin/snakemake [--json out.json]

The queue is emptied (``scancel --me``) before and after every measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
from submit_bench import clear  # noqa: E402  (a sibling script, not a package)

TASKS = 300
DEADLINE_S = 3600.0  # a hang guard


def site_file(work: Path) -> Path:
    """The testbed's SLURM profile, tasks in Apptainer, runs under ``work``."""
    import yaml

    site = yaml.safe_load((REPO / "sites" / "testbed-slurm.yaml").read_text())
    site["runtime"] = "apptainer"
    site["runs_dir"] = str(work / "runs")
    path = work / "site.yaml"
    path.write_text(yaml.safe_dump(site))
    return path


def job_file(work: Path, bundle: int) -> Path:
    """300 hello tasks (print the spec, write a file), ``bundle`` to a SLURM array task."""
    # a job directory named hello: the task runs the hello payload baked into the image
    path = work / f"b{bundle}" / "hello" / "job.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(
        textwrap.dedent(f"""\
        name: hello-b{bundle}
        command: [python3, -m, hello, --spec, "{{spec}}"]
        params: {{greeting: hello, sleep: 0, fail_task: -1}}
        matrix: {{n: {{range: [0, {TASKS}]}}}}
        resources: {{cpus: 1, memory: 256MiB, walltime: "00:10:00"}}
        bundle: {bundle}
        """)
    )
    return path


def fcgtainer(work: Path, image: str, bundle: int) -> dict[str, Any]:
    """``submit`` then poll ``status`` until all 300 have ended; seconds from the start."""
    env = {**os.environ, "FCGTAINER_STATE_DIR": str(work / f"state-{bundle}")}
    cli = [sys.executable, "-m", "fcgtainer"]
    site, job = site_file(work), job_file(work, bundle)
    start = time.perf_counter()
    out = subprocess.run(
        [*cli, "submit", str(job), "--site", str(site), "--image", image],
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    run = out.split("submitted run ", 1)[1].split()[0]
    from fcgtainer.runs import monitor
    from fcgtainer.runs.journal import Journal

    os.environ["FCGTAINER_STATE_DIR"] = env["FCGTAINER_STATE_DIR"]
    journal = Journal()
    while True:
        tasks = monitor.refresh(journal, journal.run(run))
        if all(t.status.state.terminal for t in tasks):
            break
        if time.perf_counter() - start > DEADLINE_S:
            raise RuntimeError(f"bundle {bundle}: not done after {DEADLINE_S} s")
        time.sleep(1.0)
    seconds = time.perf_counter() - start
    states = sorted({t.status.state.value for t in tasks})
    jobs = len({t.backend_id for t in tasks})
    clear()
    return {"bundle": bundle, "seconds": round(seconds, 1), "states": states, "jobs": jobs}


def snakemake(work: Path, image: str, binary: str) -> dict[str, Any]:
    """Snakemake's SLURM plugin, one job each: 300 jobs of ``apptainer exec IMAGE touch``."""
    here = work / "snakemake"
    here.mkdir()
    (here / "Snakefile").write_text(
        textwrap.dedent(f"""\
        rule all:
            input: expand("out/{{n}}.done", n=range({TASKS}))
        rule touch:
            output: "out/{{n}}.done"
            resources: cpus_per_task=1, mem_mb=256, runtime=10, slurm_partition="debug"
            shell: "apptainer exec {image} touch {{output}}"
        """)
    )
    argv = [binary, "--executor", "slurm", "--jobs", str(TASKS),
            "--latency-wait", "5", "--slurm-no-account", "--max-jobs-per-timespan", "1000/1s",
            "--slurm-logdir", str(here / "slurm-logs")]  # fmt: skip
    start = time.perf_counter()
    with open(here / "snakemake.log", "wb") as log:
        subprocess.run(argv, cwd=here, stdout=log, stderr=log, check=True, timeout=DEADLINE_S)
    seconds = time.perf_counter() - start
    done = len(list((here / "out").glob("*.done")))
    clear()
    return {"seconds": round(seconds, 1), "outputs": done}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="a SIF with python3")
    parser.add_argument("--bundle", type=int, default=25)
    parser.add_argument("--snakemake", default="", help="snakemake with the SLURM plugin")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    opts = parser.parse_args()
    clear()
    with tempfile.TemporaryDirectory(prefix="bundle-bench-", dir=Path.home()) as tmp:
        work = Path(tmp)
        figures: dict[str, Any] = {"tasks": TASKS}
        figures["bundled"] = fcgtainer(work, opts.image, opts.bundle)
        print(f"bundle {opts.bundle}: {figures['bundled']}", flush=True)
        figures["unbundled"] = fcgtainer(work, opts.image, 1)
        print(f"unbundled: {figures['unbundled']}", flush=True)
        if opts.snakemake:
            figures["snakemake"] = snakemake(work, opts.image, opts.snakemake)
            print(f"snakemake: {figures['snakemake']}", flush=True)
            ratio = figures["bundled"]["seconds"] / figures["snakemake"]["seconds"]
            figures["bundled_over_snakemake"] = round(ratio, 3)
        ratio = figures["bundled"]["seconds"] / figures["unbundled"]["seconds"]
        figures["bundled_over_unbundled"] = round(ratio, 3)
    print(json.dumps(figures, indent=2))
    if opts.json:
        opts.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
