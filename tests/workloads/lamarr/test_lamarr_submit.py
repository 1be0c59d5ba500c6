"""Missing or mismatched models stop ``fcgtainer submit lamarr`` on the submit host
(job.yaml's ``inputs.models.check``), before any task is queued."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from lhcb_testing import LHCB_LIBRARY, LHCB_MODELS

STAGES = ("acceptance", "efficiency", "resolution", "covariance")


def _submit(tmp_path: Path, models: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "site.yaml"
    site.write_text(
        "scheduler: local\nruntime: native\n"
        f"runs_dir: {tmp_path / 'runs'}\n"
        f"job_inputs: {{lamarr: {{models: {models}}}}}\n"
    )
    argv = [sys.executable, "-m", "fcgtainer", "submit", "lamarr", "--site", str(site)]
    argv += ["--set", "runs=1..2", "--set", "events=5", *extra]
    env = {**os.environ, "COLUMNS": "300"}
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False)


def _models(tmp_path: Path, *, function: str = "covariance", machine: int | None = None,
            sha256: str | None = None, drop: bool = False) -> Path:  # fmt: skip
    models = tmp_path / "models"
    shutil.copytree(LHCB_MODELS, models)
    library = models / LHCB_LIBRARY.name
    if machine is not None:
        data = bytearray(library.read_bytes())
        data[18:20] = machine.to_bytes(2, "little")
        library.write_bytes(bytes(data))
    config = yaml.safe_load((models / "models.yaml").read_text())
    digest = sha256 or hashlib.sha256(library.read_bytes()).hexdigest()
    for stage in STAGES:
        config["models"][stage]["sha256"] = digest
    config["models"]["covariance"]["function"] = function
    (models / "models.yaml").write_text(yaml.safe_dump(config))
    if drop:
        library.unlink()
    return models


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"function": "covariance_v2"}, "exports no function 'covariance_v2'"),
        ({"sha256": "ab" * 32}, "sha256 ffd4d22c62a68567... differs"),
        ({"machine": 183}, "built for aarch64 (64-bit), the nodes run x86_64"),
        ({"drop": True}, "lhcb.trk.2016MU.20230128.so: missing"),
    ],
)
def test_mismatched_models_fail_at_submit(tmp_path: Path, fault: dict, message: str) -> None:
    done = _submit(tmp_path, _models(tmp_path, **fault))
    assert done.returncode == 3, done.stdout + done.stderr
    first = done.stderr.strip().splitlines()[0]
    assert first.startswith(f"error: input models ({tmp_path / 'models'}): lamarr_job: error: ")
    assert message in first
    assert not (tmp_path / "runs").exists()


def test_lhcb_models_pass_the_submit_check(tmp_path: Path) -> None:
    done = _submit(tmp_path, LHCB_MODELS, "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    # the campaign: two generate tasks, then merge and validate
    assert "all 4 task(s) succeeded" in done.stdout
    (run_dir,) = (tmp_path / "runs").glob("lamarr-*")
    assert len(list(run_dir.glob("out/[01]/lamarr_run00000[12].root"))) == 2
    assert (run_dir / "out" / "2" / "lamarr_merged.root").is_file()
    assert json.loads((run_dir / "out" / "3" / "metrics.json").read_text())["runs"] == 2


def test_every_parameter_of_the_payload_can_be_set_from_the_command_line() -> None:
    """Each parameter ``lamarr_job`` reads is declared in job.yaml, so ``--set`` can name it
    (``run`` and ``banned_runs`` come from ``runs:``)."""
    from lamarr_job.spec import DEFAULTS

    job = yaml.safe_load((Path(__file__).parents[3] / "jobs/lamarr/job.yaml").read_text())
    assert sorted(set(DEFAULTS) - set(job["params"]) - {"run", "banned_runs"}) == []
