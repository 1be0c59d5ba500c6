"""CVMFS probing that never hangs, doctor's CVMFS rows, and the image runscript's fallback."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from fcgtainer import node
from fcgtainer.config.site import Site
from fcgtainer.host import cvmfs, doctor

pytestmark = pytest.mark.unit

RUNSCRIPT = node.source_dir() / "run.sh"


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def hanging_ls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``ls`` that never answers (a hung automount), first on PATH."""
    bin_dir = tmp_path / "hang"
    bin_dir.mkdir()
    executable(bin_dir / "ls", "#!/bin/sh\nexec sleep 300\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return bin_dir


def test_probe_ok_and_missing(tmp_path: Path) -> None:
    assert cvmfs.probe(str(tmp_path), 5) == "ok"
    assert cvmfs.probe(str(tmp_path / "nope"), 5) == "missing"


def test_probe_of_a_hung_mount_times_out(hanging_ls: Path, tmp_path: Path) -> None:
    start = time.monotonic()
    assert cvmfs.probe(str(tmp_path), 0.5) == "hung"
    assert time.monotonic() - start < 5


def test_doctor_reports_a_hung_repository(hanging_ls: Path) -> None:
    site = Site.model_validate(
        {"cvmfs": {"repositories": {"sft.cern.ch": "host"}, "probe_timeout": 0.3}}
    )
    checks = doctor.check_cvmfs(site)
    row = next(c for c in checks if c.name == "/cvmfs/sft.cern.ch")
    assert row.status == "fail" and "hung" in row.detail and row.fix


def test_doctor_names_a_missing_cvmfsexec(tmp_path: Path) -> None:
    site = Site.model_validate(
        {
            "cvmfs": {
                "repositories": {"nonexistent.cern.ch": "cvmfsexec"},
                "cvmfsexec": {"path": str(tmp_path / "cvmfsexec")},
            }
        }
    )
    checks = doctor.check_cvmfs(site)
    assert [c.name for c in checks] == ["/cvmfs/nonexistent.cern.ch", "cvmfsexec"]
    assert checks[1].status == "warn" and "makedist default" in checks[1].fix
    executable(tmp_path / "cvmfsexec", "#!/bin/sh\nexit 0\n")
    assert cvmfs.find_cvmfsexec(site) == str(tmp_path / "cvmfsexec")
    assert doctor.check_cvmfs(site)[1].status == "ok"


def test_doctor_runs_without_a_site() -> None:
    checks = doctor.run_checks(None)
    names = [c.name for c in checks]
    for expected in ("apptainer", "user namespaces", "subuid/subgid", "/dev/fuse", "image mode"):
        assert expected in names
    assert all(c.status in ("ok", "warn", "fail", "info") for c in checks)
    assert all(c.fix for c in checks if c.status in ("warn", "fail"))


# --- the runscript of the images (fcgtainer/node/run.sh) ---------------------------------


def runscript(env: dict[str, str], *cmd: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": "/tmp"}
    return subprocess.run(
        [str(RUNSCRIPT), *cmd], env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def test_runscript_without_cvmfs_runs_the_command() -> None:
    done = runscript({}, "echo", "hi")
    assert done.returncode == 0 and done.stdout == "hi\n"


@pytest.mark.skipif(Path("/cvmfs/nonexistent.cern.ch").exists(), reason="cannot be missing")
def test_runscript_without_cvmfsexec_exits_87(tmp_path: Path) -> None:
    env = {"FCGTAINER_CVMFS_REPOS": "nonexistent.cern.ch", "FCGTAINER_CVMFSEXEC": "/nope"}
    done = runscript(env, "true")
    assert done.returncode == 87 and "cvmfsexec is not at /nope" in done.stderr


def test_runscript_smoke_test_failure_exits_87(tmp_path: Path) -> None:
    exe = executable(tmp_path / "cvmfsexec", "#!/bin/sh\necho 'cannot mount' >&2\nexit 1\n")
    env = {
        "FCGTAINER_CVMFS_REPOS": "nonexistent.cern.ch",
        "FCGTAINER_CVMFSEXEC": str(exe),
        "FCGTAINER_SCRATCH": str(tmp_path),
    }
    done = runscript(env, "true")
    assert done.returncode == 87
    assert "smoke test failed" in done.stderr and "cannot mount" in done.stderr


def test_runscript_gpu_check_exits_86() -> None:
    done = runscript({"FCGTAINER_GPUS": "1", "PATH": "/usr/bin:/bin"}, "true")
    assert done.returncode == 86 and "GPU" in done.stderr
