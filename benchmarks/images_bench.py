"""Image build and container start-up, measured side by side in one run (in the testbed).

    python benchmarks/images_bench.py [--recipe standalone-debian] [--repeat 10]
        [--full-build] [--images-dir DIR]

- rebuild after a payload-only change as a fraction of a full build (target <= 0.2): a thin
  payload layer (a copy of jobs/) on the recipe's base is built, a payload file changes, and
  it is built again. The full build is the base's own build time plus the first payload
  build; with ``--full-build`` the base is rebuilt from scratch in this very run (minutes).
- per-task start overhead: the task argv fcgtainer writes (launcher, ``--containall``,
  workdir on scratch, allow-listed env) against a bare ``apptainer exec IMAGE true``,
  interleaved, ratio of medians (target <= 1.2).
- exec of the SIF mounted (FUSE) vs unpacked on every exec (``--unsquash``) vs unpacked once
  per node (the sandbox fcgtainer leaves in scratch), medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _time(argv: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   cwd=cwd)  # fmt: skip
    return time.perf_counter() - start


def fuse_open() -> bool:
    """Whether /dev/fuse is usable here (the SIF can be mounted)."""
    return os.access("/dev/fuse", os.R_OK | os.W_OK)


def rebuild_ratio(recipe_name: str, work: Path, full_build: bool) -> dict[str, float]:
    """Full build vs rebuild of the thin payload layer after one payload file changed."""
    from fcgtainer.host.buildargs import BUILD_ARGS
    from fcgtainer.images import build, recipe

    base_name = recipe.load(recipe_name, BUILD_ARGS).chain()[0].name
    recipes = work / "recipes"
    (recipes / "base").mkdir(parents=True)
    shutil.copy(recipe.available()[base_name], recipes / f"{base_name}.def")
    payload = work / "jobs"
    shutil.copytree(ROOT / "jobs", payload, ignore=shutil.ignore_patterns("__pycache__"))
    (recipes / "thin.def").write_text(
        f"Bootstrap: localimage\nFrom: {base_name}.sif\n\n"
        f"%files\n    {payload} /opt/fcgtainer/jobs\n"
    )
    os.environ["FCGTAINER_RECIPES"] = str(recipes)
    start = time.perf_counter()
    first = build.build("thin", force=False)
    if full_build and not first[0].built:
        first = build.build(base_name, force=True) + build.build("thin", force=True)[1:]
    first_s = time.perf_counter() - start
    base_s = float(first[0].provenance.get("build_seconds", first[0].seconds))
    payload_first_s = first[-1].seconds
    marker = payload / "fastcalogan" / "fastcalogan" / "__init__.py"
    marker.write_text(marker.read_text() + f"\n# benchmark edit {time.time()}\n")
    start = time.perf_counter()
    second = build.build("thin")
    rebuild_s = time.perf_counter() - start
    assert [layer.built for layer in second] == [False, True], "only the payload rebuilds"
    full_s = base_s + payload_first_s
    return {
        "base_build_s": base_s,
        "payload_first_build_s": payload_first_s,
        "full_build_s": full_s,
        "payload_rebuild_s": rebuild_s,
        "ratio": rebuild_s / full_s if full_s else float("nan"),
        "first_call_s": first_s,
    }


def start_overhead(image: Path, work: Path, repeat: int) -> dict[str, float]:
    """fcgtainer's task argv vs bare `apptainer exec IMAGE true`, interleaved, medians."""
    from fcgtainer.config.job import Job
    from fcgtainer.config.site import Site
    from fcgtainer.plan import container
    from fcgtainer.plan.tasks import make_plan, task_spec

    (work / "scratch").mkdir()
    (work / "job").mkdir()
    site = Site.model_validate(
        {"runs_dir": str(work / "runs"), "scratch": str(work / "scratch"), "runtime": "apptainer"}
    )
    job = Job(name="bench", command=("true",)).model_copy(update={"job_dir": str(work / "job")})
    plan = make_plan(job, site, {}, "bench-0000", runtime="apptainer", image=str(image))
    plan.out_dir(0).mkdir(parents=True)
    plan.task_dir(0).mkdir(parents=True)
    (plan.task_dir(0) / "spec.json").write_text(json.dumps(task_spec(plan, plan.tasks[0])))
    ours_argv = container.task_argv(plan, plan.tasks[0])
    flags = [] if fuse_open() else ["--unsquash"]
    bare = ["apptainer", "exec", *flags, str(image), "true"]
    _time(ours_argv, plan.out_dir(0))  # first task on the node: may unpack the image
    _time(bare)
    ours, theirs = [], []
    for _ in range(repeat):
        ours.append(_time(ours_argv, plan.out_dir(0)))
        theirs.append(_time(bare))
    a, b = statistics.median(ours), statistics.median(theirs)
    return {"fcgtainer_task_s": a, "bare_apptainer_exec_s": b, "ratio": a / b,
            "fuse_open": float(fuse_open())}  # fmt: skip


def exec_modes(image: Path, work: Path, repeat: int) -> dict[str, float]:
    """exec with the SIF mounted, unpacked per exec, and unpacked once (sandbox), medians."""
    sandbox = work / "sandbox"
    start = time.perf_counter()
    subprocess.run(["apptainer", "-q", "build", "--sandbox", str(sandbox), str(image)],
                   check=True, capture_output=True)  # fmt: skip
    unpack_s = time.perf_counter() - start
    modes = {"unpacked_per_exec_s": ["apptainer", "exec", "--unsquash", str(image), "true"],
             "unpacked_once_s": ["apptainer", "exec", str(sandbox), "true"]}  # fmt: skip
    if fuse_open():
        modes["mounted_s"] = ["apptainer", "exec", str(image), "true"]
    times: dict[str, list[float]] = {name: [] for name in modes}
    for _ in range(repeat):
        for name, argv in modes.items():
            times[name].append(_time(argv))
    out = {name: statistics.median(values) for name, values in times.items()}
    out["one_unpack_s"] = unpack_s
    return out


def main() -> None:
    """Run the three measurements and print them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="standalone-debian")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--full-build", action="store_true", help="rebuild the base too")
    parser.add_argument("--images-dir", help="default: FCG_TEST_IMAGE_CACHE or the usual")
    args = parser.parse_args()
    images = args.images_dir or os.environ.get("FCG_TEST_IMAGE_CACHE")
    if images:
        os.environ["FCGTAINER_IMAGES_DIR"] = images
    from fcgtainer.images import build

    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="fcg-images-bench-") as tmp:
        work = Path(tmp)
        (work / "build").mkdir()
        results["rebuild"] = rebuild_ratio(args.recipe, work / "build", args.full_build)
        os.environ.pop("FCGTAINER_RECIPES", None)
        image = Path(build.build(args.recipe)[-1].image)
        (work / "start").mkdir()
        results["start_overhead"] = start_overhead(image, work / "start", args.repeat)
        (work / "modes").mkdir()
        results["exec_modes"] = exec_modes(image, work / "modes", max(3, args.repeat // 2))
        results["image_mb"] = image.stat().st_size / 1e6
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
