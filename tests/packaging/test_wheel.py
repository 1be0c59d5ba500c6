"""fcgtainer installed from its wheel, anywhere: sites, jobs and recipes come with it.

Builds the wheel of this checkout, installs it in a fresh venv outside the checkout, and
runs the commands a new user runs first, from an empty directory with an empty HOME.
Needs pip to reach the package registry (or a warm pip cache) for the dependencies.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.wheel
ROOT = Path(__file__).resolve().parents[2]
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(venv, work directory): the wheel installed in a fresh venv, both outside ROOT."""
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(dist), str(ROOT)], check=True)
    wheels = list(dist.glob("fcgtainer-*.whl"))
    assert len(wheels) == 1, wheels
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    vpip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*vpip, "install", str(wheels[0])], check=True, cwd=base)
    work = base / "project"
    (work / "home").mkdir(parents=True)
    return venv, work


@pytest.fixture
def fcgtainer(installed: tuple[Path, Path]) -> Run:
    """Run the installed ``fcgtainer`` in the empty project directory, HOME there too."""
    venv, work = installed
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(work / "home"),
        "LANG": "C.UTF-8",
        "COLUMNS": "200",
    }

    def run(*args: str, cwd: Path = work) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["fcgtainer", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"fcgtainer {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done

    return run


def test_the_package_comes_from_the_wheel(installed: tuple[Path, Path]) -> None:
    venv, work = installed
    code = "import fcgtainer.paths as p; print(p.shipped_root())"
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], cwd=work, capture_output=True, text=True
    )
    shipped = Path(done.stdout.strip())
    assert shipped.name == "_shipped" and venv in shipped.parents, done.stderr
    assert (shipped / "Apptainer.def").is_file() and (shipped / "recipes" / "base").is_dir()
    assert (shipped.parent / "node" / "launch.sh").is_file()
    (wheel,) = (venv.parent / "dist").glob("fcgtainer-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n]


def test_sites_and_jobs_say_where_they_come_from(
    fcgtainer: Run, installed: tuple[Path, Path]
) -> None:
    _, work = installed
    sites = fcgtainer("sites").stdout
    assert "leonardo" in sites and "shipped" in sites and "project" not in sites
    jobs = fcgtainer("jobs").stdout
    for name in ("hello", "fastcalogan", "lamarr"):
        assert name in jobs
    mine = work / "home" / ".config" / "fcgtainer" / "sites"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text("description: my laptop\nscheduler: local\n")
    (mine / "leonardo.yaml").write_text("description: my leonardo\nscheduler: local\n")
    sites = fcgtainer("sites").stdout
    row = next(line for line in sites.splitlines() if line.split()[:1] == ["mine"])
    assert "user" in row
    row = next(line for line in sites.splitlines() if line.split()[:1] == ["leonardo"])
    assert "user" in row and "my leonardo" in row, "the user's profile wins over the shipped"


def test_hello_runs_on_the_local_site(fcgtainer: Run, installed: tuple[Path, Path]) -> None:
    _, work = installed
    done = fcgtainer("submit", "hello", "--site", "local", "--wait")
    assert "succeeded" in done.stdout
    outputs = list((work / "home" / "fcgtainer-runs").glob("hello-*/out/*/hello.txt"))
    assert len(outputs) == 4


@pytest.mark.parametrize("job", ["fastcalogan", "lamarr"])
def test_workloads_plan_from_the_wheel(
    fcgtainer: Run, installed: tuple[Path, Path], job: str
) -> None:
    venv, _ = installed
    done = fcgtainer("submit", job, "--dry-run")
    assert f"{job} on local" in done.stdout
    assert str(venv) in done.stdout, "the job directory is the wheel's"
