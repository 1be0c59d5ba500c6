"""Secret values (allow-listed variables, the site's env.set) never in clear in a record or
on a command line: the task reads them from a 0600 file."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fcgtainer.runs import monitor
from fcgtainer.runs import submit as runs
from fcgtainer.runs.journal import Journal

pytestmark = pytest.mark.unit

TOKEN = "hf_TOKEN_VALUE_1234"
WANDB = "wandb-KEY-5678"


def _cmdlines() -> str:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found.append((entry / "cmdline").read_bytes().decode(errors="replace"))
            except OSError:
                continue
    return "\n".join(found)


def _wait(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_secrets_never_recorded_nor_on_a_command_line(
    write: Callable[[str, str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    isolated_state: Path,
) -> None:
    site = write(
        "sites/s.yaml",
        f"""\
        scheduler: local
        runtime: native
        runs_dir: {tmp_path}/runs
        env: {{allow: [HF_TOKEN], set: {{WANDB_API_KEY: {WANDB}}}}}
        """,
    )
    job = write(
        "jobs/peek/job.yaml",
        """\
        command: [bash, -c, 'printenv HF_TOKEN > seen; printenv WANDB_API_KEY >> seen; sleep 3', peek]
        """,
    )
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    journal = Journal()
    plan = runs.plan_run(str(job), str(site), [])
    runs.submit(plan, journal)
    seen = plan.out_dir(0) / "seen"
    _wait(lambda: seen.exists() and seen.read_text().count("\n") == 2)
    cmdlines = _cmdlines()
    assert TOKEN not in cmdlines and WANDB not in cmdlines
    _wait(
        lambda: all(
            t.status.state.terminal for t in monitor.refresh(journal, journal.run(plan.run_id))
        )
    )
    assert seen.read_text() == f"{TOKEN}\n{WANDB}\n"
    for path in [*plan.run_dir.rglob("*"), *isolated_state.rglob("*")]:
        if path.is_file() and path.name not in ("env", "seen"):
            data = path.read_bytes()
            assert TOKEN.encode() not in data and WANDB.encode() not in data, path
    env_file = plan.run_dir / "env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    record = journal.run(plan.run_id).manifest
    assert record["env"]["names"] == ["HF_TOKEN", "WANDB_API_KEY"]
    assert record["site"]["env"]["set"] == {"WANDB_API_KEY": "(not recorded)"}


def test_launcher_reads_secrets_from_the_file_not_argv(tmp_path: Path) -> None:
    """The Apptainer launcher: values come from --env-file, the argv names only the file."""
    from fcgtainer import node
    from fcgtainer.config.job import Job
    from fcgtainer.config.site import Site
    from fcgtainer.plan import container
    from fcgtainer.plan.tasks import make_plan
    from fcgtainer.runs.rundir import write_secret_env

    fake = tmp_path / "apptainer"
    fake.write_text('#!/bin/bash\nenv > "$(dirname "$0")/env.seen"; sleep 2\n')
    fake.chmod(0o755)
    image = tmp_path / "i.sif"
    image.write_text("")
    site = Site(
        runs_dir=str(tmp_path / "runs"),
        apptainer={"binary": str(fake), "unpack": "never"},  # type: ignore[arg-type]
        env={"allow": ["HF_TOKEN"], "set": {"WANDB_API_KEY": WANDB}},  # type: ignore[arg-type]
    )
    job = Job(name="t", command=("true",)).model_copy(update={"job_dir": str(tmp_path)})
    plan = make_plan(job, site, {}, "0123456789", runtime="apptainer", image=str(image))
    host = {"HOME": str(tmp_path), "HF_TOKEN": TOKEN, "PATH": os.environ["PATH"]}
    write_secret_env(plan, host)
    node.install(plan.run_dir)
    argv = container.task_argv(plan, plan.tasks[0], host)
    assert TOKEN not in "".join(argv) and WANDB not in "".join(argv)
    plan.out_dir(0).mkdir(parents=True, exist_ok=True)
    import subprocess

    child = subprocess.Popen(argv, cwd=plan.out_dir(0), env={"PATH": os.environ["PATH"]})
    try:
        _wait(lambda: (tmp_path / "env.seen").exists())
        time.sleep(0.2)
        cmdlines = _cmdlines()
        assert TOKEN not in cmdlines and WANDB not in cmdlines
    finally:
        child.wait(timeout=30)
    seen = (tmp_path / "env.seen").read_text()
    assert f"APPTAINERENV_HF_TOKEN={TOKEN}" in seen
    assert f"APPTAINERENV_WANDB_API_KEY={WANDB}" in seen
