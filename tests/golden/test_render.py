"""Rendered sbatch submissions and HTCondor submit descriptions, against files in tests/golden.

When a rendering changes on purpose, regenerate the files and review the diff:

    FCG_REGEN_GOLDEN=1 .venv/bin/pytest tests/golden
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from plans import (
    HOSTILE,
    campaign_plan,
    factory_plan,
    gpu_plan,
    hostile_plan,
    plain_plan,
    split_campaign_plan,
)

from fcgtainer.backends.htcondor import describe_dag, describe_submit, render_submit
from fcgtainer.backends.slurm import describe_sbatch, render_sbatch, sbatch_options
from fcgtainer.errors import ConfigError
from fcgtainer.plan.tasks import Plan

pytestmark = pytest.mark.golden
HERE = Path(__file__).resolve().parent
REGEN = "FCG_REGEN_GOLDEN=1 .venv/bin/pytest tests/golden"

CASES: dict[str, tuple[Callable[[], Plan], Callable[[Plan], str]]] = {
    "slurm_plain.sh": (plain_plan, describe_sbatch),
    "slurm_gpu.sh": (gpu_plan, describe_sbatch),
    "slurm_hostile.sh": (lambda: hostile_plan(Path("/golden")), describe_sbatch),
    "slurm_campaign.sh": (
        campaign_plan,
        lambda plan: describe_sbatch(plan, python="/usr/bin/python3"),
    ),
    "slurm_split.sh": (
        split_campaign_plan,
        lambda plan: describe_sbatch(plan, python="/usr/bin/python3"),
    ),
    "htcondor_plain.sub": (plain_plan, describe_submit),
    "htcondor_campaign.dag": (
        lambda: campaign_plan("htcondor"),
        lambda plan: describe_dag(plan, python="/usr/bin/python3"),
    ),
    "htcondor_factory.sub": (factory_plan, describe_submit),
    "htcondor_factory_campaign.dag": (
        # make and check (6 tasks each) above the threshold, sum (1 task) below it
        lambda: campaign_plan("htcondor", {"factory_above": 3, "max_idle": 2}),
        lambda plan: describe_dag(plan, python="/usr/bin/python3"),
    ),
    "htcondor_gpu.sub": (gpu_plan, describe_submit),
    "htcondor_hostile.sub": (lambda: hostile_plan(Path("/golden")), describe_submit),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_golden_file(name: str) -> None:
    """The rendering is byte for byte the reviewed file."""
    make, render = CASES[name]
    text = render(make())
    path = HERE / name
    if os.environ.get("FCG_REGEN_GOLDEN") == "1":
        before = path.read_text() if path.exists() else None
        path.write_text(text)
        if before != text:
            pytest.skip(f"{name} regenerated: review `git diff tests/golden`")
        return  # unchanged: nothing to compare a freshly written file with
    assert path.exists(), f"{path} is missing: create it with `{REGEN}`"
    assert text == path.read_text(), (
        f"{path} differs from the rendering; if the change is intended, "
        f"regenerate with `{REGEN}` and review `git diff tests/golden`"
    )


def _fake_tool(bin_dir: Path, name: str, out: Path) -> None:
    """A stand-in for ``name`` that records its argv (NUL-separated) and its stdin."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f'#!/bin/bash\nprintf "%s\\0" "$@" > {out}/argv\ncat > {out}/stdin\n')
    tool.chmod(0o755)


def _split_nul(data: bytes) -> list[str]:
    return [a.decode() for a in data.split(b"\0")[:-1]]


def test_hostile_sbatch_read_back_through_bash(tmp_path: Path) -> None:
    """The dry-run command, run by a real bash, hands sbatch exactly the intended values."""
    plan = hostile_plan(tmp_path)
    out = tmp_path / "seen"
    out.mkdir()
    _fake_tool(tmp_path / "bin", "sbatch", out)
    work = tmp_path / "cwd"
    work.mkdir()
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}
    subprocess.run(["bash", "-c", describe_sbatch(plan)], cwd=work, env=env, check=True)
    argv = _split_nul((out / "argv").read_bytes())
    assert argv == sbatch_options(plan)
    assert "--partition=a 0" in argv
    assert "--account=a'; echo foo" in argv
    assert '--qos=a"=0"' in argv
    assert "--constraint=$(touch x)" in argv
    assert f"--job-name={plan.name}" in argv
    assert (out / "stdin").read_text() == render_sbatch(plan)
    assert not list(work.iterdir()), "something in the command was executed"


def test_hostile_batch_script_starts_wrapper_with_exact_paths(tmp_path: Path) -> None:
    """The batch script, run by bash, passes the run directory through unchanged."""
    plan = hostile_plan(tmp_path)
    plan.run_dir.mkdir(parents=True)
    seen = tmp_path / "wrapper-argv"
    (plan.run_dir / "wrapper.sh").write_text(f'printf "%s\\0" "$0" "$@" > {_q(seen)}\n')
    work = tmp_path / "cwd"
    work.mkdir()
    script = tmp_path / "batch.sh"
    script.write_text(render_sbatch(plan))
    env = {"SLURM_ARRAY_TASK_ID": "2", "PATH": "/usr/bin:/bin"}
    subprocess.run(["bash", str(script)], cwd=work, env=env, check=True)
    wrapper, run_dir, index = _split_nul(seen.read_bytes())
    assert (wrapper, run_dir, index) == (str(plan.run_dir / "wrapper.sh"), str(plan.run_dir), "2")
    assert not list(work.iterdir()), "something in the script was executed"


def _q(path: Path) -> str:
    import shlex

    return shlex.quote(str(path))


def test_hostile_submit_values_survive_htcondor_macro_expansion(tmp_path: Path) -> None:
    """``$`` stays literal: HTCondor's own parser gives back exactly the values we meant."""
    htcondor2 = pytest.importorskip("htcondor2")
    plan = hostile_plan(tmp_path)
    desc = render_submit(plan)
    sub = htcondor2.Submit(desc)
    assert sub.expand("batch_name") == plan.name
    assert sub.expand("log") == f"{plan.run_dir}/events.log"
    assert sub.expand("initialdir") == str(plan.run_dir)
    args = sub.expand("arguments")
    assert args == _condor_args([f"{plan.run_dir}/wrapper.sh", str(plan.run_dir), ""])


def _condor_args(argv: list[str]) -> str:
    """HTCondor's documented new-style argument quoting, written independently."""
    return '"' + " ".join("'" + a.replace("'", "''").replace('"', '""') + "'" for a in argv) + '"'


def test_control_characters_are_refused_in_submit_values(tmp_path: Path) -> None:
    """A newline cannot reach a submit description: it would start a new command."""
    plan = hostile_plan(tmp_path)
    site = plan.site.model_copy(
        update={"htcondor": plan.site.htcondor.model_copy(update={"job_flavour": HOSTILE[-1]})}
    )
    with pytest.raises(ConfigError, match="control characters"):
        render_submit(Plan(**{**plan.__dict__, "site": site}))


def test_campaign_sbatch_chain_through_bash(tmp_path: Path) -> None:
    """The dry run of a campaign, run by bash, chains each step on the ids sbatch printed."""
    from plans import campaign_plan

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    tool = bin_dir / "sbatch"
    tool.write_text(
        f'#!/bin/bash\nprintf "%s\\0" "$@" >> {calls}\necho >> {calls}\n'
        f'cat > /dev/null\nn=$(wc -l < {calls})\necho "$((100 + n));cluster"\n'
    )
    tool.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    subprocess.run(["bash", "-c", describe_sbatch(campaign_plan())], env=env, check=True)
    lines = calls.read_bytes().split(b"\n")[:-1]
    argvs = [_split_nul(line) for line in lines]
    assert len(argvs) == 4
    assert "--dependency=aftercorr:101" in argvs[1]
    assert "--dependency=afterany:102" in argvs[2]
    assert "--dependency=afterany:101:102:103" in argvs[3]  # the report, after every array
    assert any(a.endswith(".report") for a in argvs[3])


def test_split_campaign_chain_through_bash(tmp_path: Path) -> None:
    """Arrays of 4: make 0-3 and 4-5, check paired chunk by chunk, sum after both checks."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    tool = bin_dir / "sbatch"
    tool.write_text(
        f'#!/bin/bash\nprintf "%s\\0" "$@" >> {calls}\necho >> {calls}\n'
        f'cat > /dev/null\nn=$(wc -l < {calls})\necho "$((100 + n))"\n'
    )
    tool.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    subprocess.run(["bash", "-c", describe_sbatch(split_campaign_plan())], env=env, check=True)
    argvs = [_split_nul(line) for line in calls.read_bytes().split(b"\n")[:-1]]
    arrays = [next((a for a in argv if a.startswith("--array=")), "") for argv in argvs]
    assert arrays == ["--array=0-3", "--array=0-1"] * 2 + ["--array=0", ""]
    assert "--dependency=aftercorr:101" in argvs[2]
    assert "--dependency=aftercorr:102" in argvs[3]
    assert "--dependency=afterany:103,afterany:104" in argvs[4]
