"""Every documented key does what it says, or is gone."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from fcgtainer import node
from fcgtainer.config.job import Job
from fcgtainer.config.site import Site, load_site
from fcgtainer.errors import ConfigError, PreflightError
from fcgtainer.host import doctor
from fcgtainer.images import build
from fcgtainer.plan import container
from fcgtainer.plan.tasks import make_plan
from fcgtainer.runs.submit import preflight

pytestmark = pytest.mark.unit
Write = Callable[[str, str], Path]
RunCli = Callable[..., tuple[int, str, str]]


def _plan(tmp_path: Path, site: dict[str, object], job: dict[str, object]):  # type: ignore[no-untyped-def]
    loaded = Job.model_validate({"name": "t", "command": ["true"], **job}).model_copy(
        update={"job_dir": str(tmp_path), "source": str(tmp_path / "job.yaml")}
    )
    site_model = Site.model_validate({"runs_dir": str(tmp_path / "runs"), **site}).model_copy(
        update={"source": "sites/x.yaml"}
    )
    return make_plan(loaded, site_model, {}, "0123456789", runtime="native")


@pytest.mark.parametrize("mode", ["cvmfsexec", "auto"])
def test_internet_false_refuses_cvmfsexec(tmp_path: Path, mode: str) -> None:
    repos = {"sft.cern.ch": mode} if mode != "auto" else {}
    plan = _plan(
        tmp_path,
        {"internet": False, "cvmfs": {"repositories": repos}},
        {"cvmfs": ["sft.cern.ch"]},
    )
    with pytest.raises(
        PreflightError, match=r"internet: false, but CVMFS repository sft\.cern\.ch"
    ):
        preflight(plan)


def test_internet_false_refuses_url_inputs_and_allows_host_cvmfs(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        {"internet": False, "cvmfs": {"repositories": {"sft.cern.ch": "host"}}},
        {"cvmfs": ["sft.cern.ch"]},
    )
    preflight(plan)
    url = _plan(
        tmp_path,
        {"internet": False},
        {"inputs": {"models": {"default": "https://example.org/models.tar", "required": False}}},
    )
    url = url.__class__(**{**url.__dict__, "inputs": {"models": "https://example.org/m.tar"}})
    with pytest.raises(PreflightError, match="input models is a URL"):
        preflight(url)
    online = _plan(tmp_path, {"internet": True}, {"cvmfs": ["sft.cern.ch"]})
    preflight(online)


def test_cvmfsexec_proxy_key_is_gone(write: Write) -> None:
    site = write("sites/p.yaml", "cvmfs: {cvmfsexec: {proxy: 'http://squid:3128'}}\n")
    with pytest.raises(ConfigError, match=r"cvmfs\.cvmfsexec\.proxy: unknown key"):
        load_site(str(site))


def test_apptainer_cache_dir_reaches_the_build(tmp_path: Path) -> None:
    site = Site.model_validate({"apptainer": {"cache_dir": str(tmp_path / "cache")}})
    seen: list[str | None] = []

    def runner(argv: list[str], cwd: Path, on_line: Callable[[str], None]) -> int:
        seen.append(os.environ.get("APPTAINER_CACHEDIR"))
        return 0

    run = build.with_cache_dir(runner, build.cache_dir(site))
    assert run(["apptainer", "build"], tmp_path, print) == 0
    assert seen == [str(tmp_path / "cache")]
    assert (tmp_path / "cache").is_dir()
    assert "APPTAINER_CACHEDIR" not in os.environ or os.environ["APPTAINER_CACHEDIR"] != seen[0]
    assert build.cache_dir(Site()) is None


def test_cvmfs_modes_reach_the_launcher(tmp_path: Path) -> None:
    image = tmp_path / "i.sif"
    image.write_text("")
    site = Site.model_validate(
        {
            "runs_dir": str(tmp_path / "runs"),
            "cvmfs": {"repositories": {"sft.cern.ch": "host", "lhcb.cern.ch": "cvmfsexec"}},
        }
    )
    job = Job.model_validate(
        {
            "name": "t",
            "command": ["true"],
            "cvmfs": ["sft.cern.ch", "lhcb.cern.ch", "atlas.cern.ch"],
        }
    ).model_copy(update={"job_dir": str(tmp_path)})
    plan = make_plan(job, site, {}, "0123456789", runtime="apptainer", image=str(image))
    argv = container.task_argv(plan, plan.tasks[0], {"HOME": "/h"})
    pairs = [(a, argv[i + 1]) for i, a in enumerate(argv) if a.startswith("--repo")]
    assert pairs == [
        ("--repo-host", "sft.cern.ch"),
        ("--repo-cvmfsexec", "lhcb.cern.ch"),
        ("--repo", "atlas.cern.ch"),
    ]


def _launch(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "apptainer"
    fake.write_text('#!/bin/sh\necho ran >> "$(dirname "$0")/ran"\n')
    fake.chmod(0o755)
    (tmp_path / "i.sif").write_text("")
    argv = ["bash", str(node.source_dir() / "launch.sh"), "--apptainer", str(fake)]
    argv += ["--image", str(tmp_path / "i.sif"), "--unpack", "never"]
    argv += ["--scratch", str(tmp_path / "node"), *options, "--", "true"]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_host_mode_never_falls_back_to_cvmfsexec(tmp_path: Path) -> None:
    exe = tmp_path / "cvmfsexec"
    exe.write_text(
        '#!/bin/sh\necho called >> "$0.log"\nwhile [ "$1" != -- ]; do shift; done\nshift\nexec "$@"\n'
    )
    exe.chmod(0o755)
    opts = ["--cvmfs-root", str(tmp_path / "nocvmfs"), "--cvmfsexec", str(exe)]
    done = _launch(tmp_path, *opts, "--repo-host", "sft.cern.ch")
    assert done.returncode == 87
    assert "site's mode for it is host" in done.stderr
    assert not (tmp_path / "cvmfsexec.log").exists()
    # cvmfsexec mode uses cvmfsexec even where the node has the repository
    root = tmp_path / "cvmfs"
    (root / "sft.cern.ch").mkdir(parents=True)
    done = _launch(
        tmp_path,
        "--cvmfs-root",
        str(root),
        "--cvmfsexec",
        str(exe),
        "--repo-cvmfsexec",
        "sft.cern.ch",
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cvmfsexec.log").read_text().count("called") == 2  # smoke test + run


def test_doctor_exits_non_zero_when_a_required_check_fails(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        doctor, "run_checks", lambda site: [doctor.Check("sbatch", "fail", "not found", "x")]
    )
    code, _, err = run_cli("doctor")
    assert code == 1 and "required check(s) failed: sbatch" in err
    monkeypatch.setattr(doctor, "run_checks", lambda site: [doctor.Check("x", "warn", "meh")])
    code, _, _ = run_cli("doctor")
    assert code == 0
