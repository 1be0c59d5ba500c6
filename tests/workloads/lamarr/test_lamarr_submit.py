"""Missing or mismatched models (job.yaml's ``inputs.models.check``) and bad parameters
(its ``check``) stop ``fcgtainer submit lamarr`` on the submit host, before any task is
queued."""

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


def _submit(
    tmp_path: Path, models: Path, *extra: str, hepmc: Path | None = None
) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "site.yaml"
    inputs = f"models: {models}" + (f", hepmc: {hepmc}" if hepmc else "")
    site.write_text(
        "scheduler: local\nruntime: native\n"
        f"runs_dir: {tmp_path / 'runs'}\n"
        f"job_inputs: {{lamarr: {{{inputs}}}}}\n"
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


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["generator=hepm"], "params.generator: 'hepm' is not one of gun, pythia, hepmc (2 of 2"),
        (
            ["generator=pythia", "pythia_signal=521 -> 443 321; 444 -> 13 -13"],
            "params.pythia_signal: 444 is not a daughter of an earlier decay (2 of 2",
        ),
        (["pv_condition=2016_pp_MagUpp"], "no PV smearing condition '2016_pp_MagUpp' in table"),
        (
            ["generator=hepmc", "hepmc_path=run{run}.hepmc"],
            "params.hepmc_path 'run{run}.hepmc': no file or directory for the run under the input "
            "hepmc (HEPMC) (1 of 2 tasks, the first task 1 (run=2))",
        ),
    ],
    ids=["generator", "signal chain", "pv condition", "hepmc of a run"],
)
def test_a_bad_parameter_fails_at_submit_not_in_every_task(
    tmp_path: Path, sets: list[str], message: str
) -> None:
    hepmc = tmp_path / "hepmc"
    hepmc.mkdir()
    (hepmc / "run1.hepmc").write_text("HepMC::Version 2.06.09\n")  # run 2 has none
    argv = [arg for s in sets for arg in ("--set", s)]
    done = _submit(tmp_path, LHCB_MODELS, *argv, hepmc=hepmc)
    assert done.returncode == 2, done.stdout + done.stderr
    first = done.stderr.strip().splitlines()[0]
    assert first.startswith("error: lamarr: ") and message.replace("HEPMC", str(hepmc)) in first
    assert not (tmp_path / "runs").exists()


def test_the_check_needs_neither_numpy_nor_pyhepmc_nor_sqlamarr(tmp_path: Path) -> None:
    """``fcgtainer`` may be installed on a submit host that has none of the payload's stack."""
    specs = tmp_path / "specs.jsonl"
    spec = {"params": {"run": 1, "pv_condition": "2017_pp_MagUp"}, "out_dir": str(tmp_path)}
    spec["inputs"] = {"models": str(LHCB_MODELS)}
    specs.write_text(json.dumps(spec) + "\n")
    code = (
        "import runpy, sys\n"
        "for name in ('numpy', 'pyhepmc', 'SQLamarr', 'uproot'): sys.modules[name] = None\n"
        "sys.argv = ['lamarr_job', 'check', '--specs', sys.argv[1]]\n"
        "runpy.run_module('lamarr_job', run_name='__main__')\n"
    )
    job_dir = Path(__file__).parents[3] / "jobs/lamarr"
    done = subprocess.run(
        [sys.executable, "-c", code, str(specs)], cwd=job_dir, capture_output=True, text=True
    )
    assert (done.returncode, done.stdout.strip()) == (0, "lamarr_job: 1 task spec(s) valid")


def test_every_parameter_of_the_payload_can_be_set_from_the_command_line() -> None:
    """Each parameter ``lamarr_job`` reads is declared in job.yaml, so ``--set`` can name it
    (``run`` and ``banned_runs`` come from ``runs:``)."""
    from lamarr_job.spec import DEFAULTS

    job = yaml.safe_load((Path(__file__).parents[3] / "jobs/lamarr/job.yaml").read_text())
    assert sorted(set(DEFAULTS) - set(job["params"]) - {"run", "banned_runs"}) == []
