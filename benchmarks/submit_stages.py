"""Where the time of a 300-task ``fcgtainer submit`` goes, stage by stage.

    python benchmarks/submit_stages.py [--repeat 11] [--submitit PYTHON]

The shipped FastCaloGAN job without ``steps:`` (300 training tasks, one array) is submitted
to a SLURM site profile whose ``sbatch`` and friends are stub scripts (``sbatch`` answers a
job id at once, as the testbed's idle controller nearly does), so that what is measured is
fcgtainer alone. Each stage is a child process started from scratch, the stages taking
turns ``--repeat`` times so that machine noise hits them alike; medians in ms:

- ``python``: the interpreter starting and exiting (``python -c pass``);
- ``typer+rich+yaml``: importing the three libraries the CLI is built on;
- ``+pydantic``: and the config's validation library;
- ``all imports``: every module a submit imports (fcgtainer's config models, planner,
  journal, task table, SLURM limits, CLI), nothing run;
- ``submit, no check``: the whole ``fcgtainer submit`` (planning, journal, task table, one
  ``sbatch --array``) of the job with its ``check`` taken out;
- ``submit``: the same with job.yaml's ``check`` (a second Python validating the 300 specs
  as the tasks would);
- with ``--submitit PY``: ``import submitit`` in that interpreter (submitit's own floor).

The differences between consecutive rows are what each stage costs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from status_bench import stubs  # noqa: E402
from submit_bench import one_step_job  # noqa: E402

IMPORTS = (
    "import fcgtainer.cli.app, fcgtainer.cli.runs, fcgtainer.runs.submit, "
    "fcgtainer.config.job, fcgtainer.config.site, fcgtainer.plan.tasks, "
    "fcgtainer.backends.slurm_limits, fcgtainer.runs.cache, fcgtainer.tasktable"
)


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds from start to exit of one child process; it must succeed."""
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--submitit", help="a Python with submitit installed")
    opts = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="fcg-submit-stages-"))
    try:
        stubs(root, 300)
        job = one_step_job(root)
        unchecked = root / "unchecked" / "fastcalogan" / "job.yaml"
        unchecked.parent.mkdir(parents=True)
        data = yaml.safe_load(job.read_text())
        data.pop("check")
        unchecked.write_text(yaml.safe_dump(data))
        site = root / "sites" / "bench.yaml"
        state = root / "state"
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "FCGTAINER_STATE_DIR": str(state),
        }
        py = sys.executable
        at_site = ["--site", str(site)]
        stages: dict[str, list[str]] = {
            "python": [py, "-c", "pass"],
            "typer+rich+yaml": [py, "-c", "import typer, rich.console, yaml"],
            "+pydantic": [py, "-c", "import typer, rich.console, yaml, pydantic"],
            "all imports": [py, "-c", IMPORTS],
            "submit, no check": [py, "-m", "fcgtainer", "submit", str(unchecked), *at_site],
            "submit": [py, "-m", "fcgtainer", "submit", str(job), *at_site],
        }
        if opts.submitit:
            stages["import submitit"] = [opts.submitit, "-c", "import submitit"]
        times: dict[str, list[float]] = {name: [] for name in stages}
        for argv in stages.values():  # warm the bytecode caches once
            timed(argv, env, root)
        for _ in range(opts.repeat):
            for name, argv in stages.items():
                if name.startswith("submit"):
                    shutil.rmtree(state, ignore_errors=True)
                    shutil.rmtree(root / "runs", ignore_errors=True)
                times[name].append(timed(argv, env, root))
        medians = {name: statistics.median(t) * 1000 for name, t in times.items()}
        total = medians["submit"]
        print(f"{'stage':<18} {'median ms':>9} {'share of submit':>16}")
        previous = 0.0
        for name in ("python", "typer+rich+yaml", "+pydantic", "all imports",
                     "submit, no check", "submit"):  # fmt: skip
            cost = medians[name] - previous
            print(f"{name:<18} {medians[name]:9.1f} {cost / total:15.0%}")
            previous = medians[name]
        if opts.submitit:
            print(f"{'import submitit':<18} {medians['import submitit']:9.1f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
