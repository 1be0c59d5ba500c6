"""The two workloads for real: FastCaloGAN training and Lamarr generation in the standalone
Debian image, on the testbed node's local pool and as short arrays on its SLURM and HTCondor.

Everything goes through the `fcgtainer` CLI exactly as a user would type it; the site
profiles are the shipped `testbed-*` ones with the run directory moved under the test's
shared directory (and, for Lamarr, the staged model directory named).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from fcgtainer.images.build import find_image

pytestmark = [pytest.mark.integration, pytest.mark.apptainer]
REPO = Path(__file__).resolve().parents[2]
RECIPE = "standalone-debian"
SCHEDULERS = {
    "local": [],
    "slurm": [pytest.mark.slurm],
    "htcondor": [pytest.mark.htcondor],
}


def fcgtainer(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """The CLI of this venv, as a user runs it."""
    exe = shutil.which("fcgtainer")
    assert exe, "fcgtainer is not installed in this environment"
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)  # fmt: skip


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def image() -> Path:
    """The standalone image (found by content hash when an earlier test built it)."""
    cache = Path(os.environ.get("FCG_TEST_IMAGE_CACHE",
                                Path.home() / ".cache" / "fcgtainer-tests" / "images"))  # fmt: skip
    cache.mkdir(parents=True, exist_ok=True)
    os.environ["FCGTAINER_IMAGES_DIR"] = str(cache)
    ok(fcgtainer("build", RECIPE, timeout=3600))
    path = Path(find_image(RECIPE))
    assert path.is_file()
    return path


def site_file(tmp: Path, scheduler: str, extra: str = "") -> Path:
    """The shipped testbed profile for ``scheduler``, runs under ``tmp``, image runtime."""
    shipped = (REPO / "sites" / f"testbed-{scheduler}.yaml").read_text()
    lines = [
        line for line in shipped.splitlines()
        if not line.startswith(("runs_dir:", "runtime:", "resources:"))
    ]  # fmt: skip
    body = (
        "\n".join(lines)
        + textwrap.dedent(f"""
        runtime: apptainer
        runs_dir: {tmp}/runs
        resources: {{cpus: 1, memory: 2GiB, walltime: "00:30:00"}}
        """)
        + extra
    )
    path = tmp / f"{scheduler}.yaml"
    path.write_text(body)
    return path


def run_dir_of(status_out: str) -> Path:
    line = next(x for x in status_out.splitlines() if x.startswith("run directory: "))
    return Path(line.removeprefix("run directory: ").strip())


@pytest.mark.parametrize("scheduler", [pytest.param(s, marks=m) for s, m in SCHEDULERS.items()])
def test_fastcalogan_in_the_image(
    image: Path, scheduler: str, shared_tmp_path: Path, submitted_jobs: object
) -> None:
    site = site_file(shared_tmp_path, scheduler)
    slices = "20" if scheduler == "local" else "20,21"
    ok(fcgtainer(
        "submit", "fastcalogan", "--site", str(site), "--wait",
        "--set", "particle=photon", "--set", f"eta_slice={slices}",
        "--set", "iterations=60", "--set", "checkpoint_every=30",
        "--set", "events_per_energy=200", "--set", "eval_events=200",
        "--set", "resources.cpus=1",
    ))  # fmt: skip
    status = ok(fcgtainer("status", "last", "--all"))
    run_dir = run_dir_of(status)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["runtime"] == "apptainer"
    assert manifest["image"]["path"] == str(image) and len(manifest["image"]["sha256"]) == 64
    n = len(slices.split(","))  # the campaign: train 0..n-1, validate n..2n-1, assemble 2n
    for task in range(n, 2 * n):
        out = run_dir / "out" / str(task)
        selection = next(out.glob("gan-photon-eta*/selection.json"))
        chosen = json.loads(selection.read_text())
        assert chosen, selection
        assert list(out.glob("gan-photon-eta*/plots/*.png"))
        assert list(out.glob("gan-photon-eta*/export/generator.npz"))
        assert json.loads((out / "metrics.json").read_text())["chi2_ndf"] > 0
    index = json.loads((run_dir / "out" / str(2 * n) / "index.json").read_text())
    assert len(index["gans"]) == n
    for task in range(2 * n + 1):
        log = (run_dir / "tasks" / str(task) / "task.log").read_text()
        assert "exited 0" in log
    assert (run_dir / "report" / "index.html").is_file()


@pytest.fixture(scope="module")
def lamarr_models(image: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models trained on the known law and compiled, inside the image (staged, not fetched)."""
    base = Path(os.environ.get("FCG_SHARED_TMP") or tmp_path_factory.mktemp("lamarr"))
    models = base / "lamarr-models"
    if not (models / "manifest.json").exists():
        closed = os.environ.get("FCG_TESTBED_FUSE") == "closed"
        argv = ["apptainer", "exec", "--cleanenv", *(["--unsquash"] if closed else [])]
        argv += ["--bind", str(base), str(image)]
        argv += ["python3", "-m", "lamarr_job", "build-models", "--out", str(models)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=1200, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    return models


@pytest.mark.parametrize("scheduler", [pytest.param(s, marks=m) for s, m in SCHEDULERS.items()])
def test_lamarr_in_the_image(
    image: Path, lamarr_models: Path, scheduler: str, shared_tmp_path: Path,
    submitted_jobs: object,
) -> None:  # fmt: skip
    # the arrays run LHCb's real 2016 MagUp tracking parametrisation (shipped with the job);
    # the local pool the demo models built in the image
    lhcb = scheduler != "local"
    models = REPO / "jobs" / "lamarr" / "data" / "lhcb-2016MU" if lhcb else lamarr_models
    extra = f"job_inputs: {{lamarr: {{models: {models}}}}}\n"
    site = site_file(shared_tmp_path, scheduler, extra)
    ok(fcgtainer(
        "submit", "lamarr", "--site", str(site), "--wait",
        "--set", "runs=1..2", "--set", "events=200",
    ))  # fmt: skip
    run_dir = run_dir_of(ok(fcgtainer("status", "last")))
    for task, run_number in enumerate((1, 2)):
        out = run_dir / "out" / str(task)
        summary = json.loads(next(out.glob("**/summary.json")).read_text())
        assert summary["events"] == 200, summary
        if lhcb:
            models_used = summary["provenance"]["models"]
            assert models_used["pipeline"] == "lhcb", models_used
            assert models_used["pv_condition"] == "2016_pp_MagUp", models_used
        assert list(out.glob(f"**/lamarr_run{run_number:06d}.root"))
