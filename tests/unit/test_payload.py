"""The code that runs is the code recorded: the image's payload by default, the checkout's
only by choice, pinned by commit and a hash of uncommitted changes."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from fcgtainer.config.job import Job
from fcgtainer.config.site import Site
from fcgtainer.plan import container
from fcgtainer.plan.tasks import IMAGE_JOBS, make_plan, task_spec
from fcgtainer.runs.submit import checkout_state, manifest

pytestmark = pytest.mark.unit
RunCli = Callable[..., tuple[int, str, str]]


def _plan(tmp_path: Path, site: dict[str, object] | None = None, payload: str | None = None):  # type: ignore[no-untyped-def]
    job_dir = tmp_path / "jobs" / "hello"
    job_dir.mkdir(parents=True, exist_ok=True)
    image = tmp_path / "i.sif"
    image.write_bytes(b"SIF")
    job = Job.model_validate({"name": "hello", "command": ["python3", "-m", "hello"]}).model_copy(
        update={"job_dir": str(job_dir), "source": str(job_dir / "job.yaml")}
    )
    site_model = Site.model_validate({"runs_dir": str(tmp_path / "runs"), **(site or {})})
    return make_plan(
        job,
        site_model,
        {},
        "0123456789",
        runtime="apptainer",
        image=str(image),
        payload=payload,  # type: ignore[arg-type]
    )


def _binds_and_env(plan) -> tuple[list[str], dict[str, str]]:  # type: ignore[no-untyped-def]
    argv = container.task_argv(plan, plan.tasks[0], {"HOME": "/h"})
    binds = [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]
    env = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--env")
    return binds, env


def test_default_runs_the_image_payload_unshadowed(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    binds, env = _binds_and_env(plan)
    assert not any(b.startswith(f"{plan.job.job_dir}:") for b in binds)
    assert env["PYTHONPATH"] == f"{IMAGE_JOBS}/hello"
    assert task_spec(plan, plan.tasks[0])["job_dir"] == f"{IMAGE_JOBS}/hello"
    record = manifest(plan)["payload"]
    assert record["from"] == "image" and record["image_sha256"]


@pytest.mark.parametrize("how", ["site", "flag"])
def test_checkout_is_an_explicit_choice(tmp_path: Path, how: str) -> None:
    plan = (
        _plan(tmp_path, site={"payload": "checkout"})
        if how == "site"
        else _plan(tmp_path, payload="checkout")
    )
    binds, env = _binds_and_env(plan)
    assert f"{plan.job.job_dir}:{plan.job.job_dir}:ro" in binds
    assert env["PYTHONPATH"] == plan.job.job_dir
    assert manifest(plan)["payload"]["from"] == "checkout"


def test_checkout_is_pinned_by_commit_and_uncommitted_hash(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "jobs" / "j").mkdir(parents=True)
    code = repo / "jobs" / "j" / "train.py"
    code.write_text("print(1)\n")

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "-q")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "0")
    git("add", ".")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", "1")
    clean = checkout_state(str(repo / "jobs" / "j"))
    assert clean == {"git_commit": git("rev-parse", "HEAD"), "uncommitted_sha256": None}
    code.write_text("print(2)\n")
    edited = checkout_state(str(repo / "jobs" / "j"))
    assert edited["git_commit"] == clean["git_commit"] and edited["uncommitted_sha256"]
    (repo / "jobs" / "j" / "new.py").write_text("x = 1\n")
    added = checkout_state(str(repo / "jobs" / "j"))
    assert added["uncommitted_sha256"] not in (None, edited["uncommitted_sha256"])


def test_cli_payload_flag(run_cli: RunCli, local_site: Path) -> None:
    hello = str(Path(__file__).resolve().parents[2] / "jobs" / "hello")
    code, _, err = run_cli("submit", hello, "--site", str(local_site), "--payload", "nope")
    assert code == 2 and "--payload 'nope'" in err
