"""CLI start-up and planning speed, measured side by side in one run.

    python benchmarks/cli_bench.py [--repeat 15]

- cold start: ``fcgtainer --help`` against ``python -c "import typer, rich, yaml"``, the runs
  interleaved so that machine noise hits both alike; the figure is the ratio of medians
  (target <= 1.5).
- planning: a 30,000-task job (two axes, 300 x 100) planned in-process, ms per 1,000 tasks;
  printed beside the cost of building the same number of plain dicts, as a yardstick.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def cold_start(repeat: int) -> dict[str, float]:
    """Median wall time of both commands, interleaved, and their ratio."""
    cli = [str(Path(sys.executable).parent / "fcgtainer"), "--help"]
    base = [sys.executable, "-c", "import typer, rich, yaml"]
    for argv in (cli, base):
        _time(argv)  # warm the page cache
    ours, theirs = [], []
    for _ in range(repeat):
        ours.append(_time(cli))
        theirs.append(_time(base))
    a, b = statistics.median(ours), statistics.median(theirs)
    return {"fcgtainer_help_s": a, "import_typer_rich_yaml_s": b, "ratio": a / b}


def planning(n_axes: tuple[int, int] = (300, 100)) -> dict[str, float]:
    """ms per 1,000 tasks for planning a 30,000-task job, and for a plain-dict yardstick."""
    from fcgtainer.config.job import load_job
    from fcgtainer.config.site import Site
    from fcgtainer.plan.tasks import make_plan

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big" / "job.yaml"
        path.parent.mkdir()
        path.write_text(
            "command: [python3, -m, payload, --spec, '{spec}']\n"
            f"matrix: {{a: {{range: [0, {n_axes[0]}]}}, b: {{range: [0, {n_axes[1]}]}}}}\n"
        )
        job = load_job(str(path))
        times = []
        for _ in range(5):
            start = time.perf_counter()
            plan = make_plan(job, Site(), {}, "0" * 36, runtime="native")
            times.append(time.perf_counter() - start)
        n = len(plan.tasks)
        yard = []
        for _ in range(5):
            start = time.perf_counter()
            _ = [{"a": i // n_axes[1], "b": i % n_axes[1]} for i in range(n)]
            yard.append(time.perf_counter() - start)
    return {
        "tasks": n,
        "plan_ms_per_1000": 1000 * statistics.median(times) / (n / 1000),
        "dicts_ms_per_1000": 1000 * statistics.median(yard) / (n / 1000),
    }


def main() -> None:
    """Run both measurements and print them as a table (and JSON with --json)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = {"cold_start": cold_start(args.repeat), "planning": planning()}
    c, p = result["cold_start"], result["planning"]
    print("| measure | figure | target |")
    print("|---|---|---|")
    print(
        f"| `fcgtainer --help` / `import typer, rich, yaml` | {c['ratio']:.2f} "
        f"({c['fcgtainer_help_s'] * 1000:.0f} ms / {c['import_typer_rich_yaml_s'] * 1000:.0f} ms)"
        " | <= 1.5 |"
    )
    print(
        f"| planning {p['tasks']:.0f} tasks, ms per 1,000 tasks | {p['plan_ms_per_1000']:.2f} "
        f"(plain dicts: {p['dicts_ms_per_1000']:.2f}) | - |"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
