"""The FastCaloGAN job through the host CLI: what ``--set`` gives the payload.

Host tier only (it runs ``python -m fcgtainer``): the oldest-TensorFlow venv has the
payload's requirements, not the tool's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

JOB_DIR = Path(__file__).resolve().parents[2] / "jobs" / "fastcalogan"
if str(JOB_DIR) not in sys.path:
    sys.path.insert(0, str(JOB_DIR))

from fastcalogan import hparams  # noqa: E402
from fastcalogan import spec as payload_spec  # noqa: E402
from fastcalogan.spec import config_from_params  # noqa: E402

pytestmark = pytest.mark.workload


def _dry_run_params(tmp_path: Path, *sets: str) -> dict[str, object]:
    """The params of task 0's spec as ``fcgtainer submit fastcalogan --dry-run`` prints it."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    site = tmp_path / "site.yaml"
    site.write_text(f"scheduler: local\nruntime: native\nruns_dir: {tmp_path / 'runs'}\n")
    argv = [sys.executable, "-m", "fcgtainer", "submit", "fastcalogan", "--site", str(site),
            "--dry-run", *(a for kv in sets for a in ("--set", kv))]  # fmt: skip
    env = {**os.environ, "COLUMNS": "300", "FCGTAINER_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout.split("spec.json of task 0\n", 1)[1]
    params: dict[str, object] = json.JSONDecoder().raw_decode(text)[0]["params"]
    return params


def test_every_parameter_can_be_set_from_the_command_line(tmp_path: Path) -> None:
    """What a physicist types, ``fcgtainer submit fastcalogan --set lr_generator=...``,
    reaches the payload's configuration; the hyperparameters left alone keep the payload's
    defaults, and every parameter the payload knows is one ``--set`` can name."""
    params = _dry_run_params(tmp_path, "particle=photon", "eta_slice=4", "lr_generator=2e-4",
                             "generator=40:80", "gp_lambda=5")  # fmt: skip
    cfg = config_from_params(params, tmp_path / "out")
    expected = replace(hparams.defaults("photon"), lr_generator=2e-4, generator=(40, 80),
                       gp_lambda=5.0)  # fmt: skip
    assert cfg.hp == expected and cfg.hp.batch_norm and cfg.hp.activation == "swish"
    job = yaml.safe_load((JOB_DIR / "job.yaml").read_text())
    known = {*payload_spec._DEFAULTS, *payload_spec._REQUIRED, *hparams.names()}
    assert sorted(known - set(job["params"]) - set(job["matrix"])) == []


def test_a_binning_xml_outranks_the_defaults_and_set_outranks_it(tmp_path: Path) -> None:
    """The shipped job leaves every hyperparameter to the payload, so a physicist's
    binning.xml (ReLU, label MaxE) is what trains, not the defaults (swish, logE); a
    ``--set`` wins over both."""
    xml = tmp_path / "binning.xml"
    xml.write_text(
        '<Bins><Particle pid="22" activationFunction="ReLU" label_definition="MaxE" '
        'latentDim="40"><Bin etaMin="0" etaMax="500" regionId="0">'
        '<Layer id="0" r_edges="0,5,10" n_bin_alpha="1"/></Bin></Particle></Bins>'
    )
    base = ("particle=photon", "eta_slice=4", f"binning={xml}")
    cfg = config_from_params(_dry_run_params(tmp_path / "a", *base), tmp_path / "out")
    assert (cfg.hp.activation, cfg.hp.label, cfg.hp.latent_dim) == ("relu", "maxE", 40)
    assert cfg.hp.output_init == "data"  # a default the file does not set
    params = _dry_run_params(tmp_path / "b", *base, "activation=swish", "latent_dim=30")
    cfg = config_from_params(params, tmp_path / "out2")
    assert (cfg.hp.activation, cfg.hp.label, cfg.hp.latent_dim) == ("swish", "maxE", 30)


def test_a_bad_value_is_refused_at_submit_by_the_payloads_own_check(tmp_path: Path) -> None:
    """job.yaml's ``check`` runs the payload's validation on the submit host (no TensorFlow):
    a value every task would refuse at its start stops the submit instead, with exit 2."""
    site = tmp_path / "site.yaml"
    site.write_text(f"scheduler: local\nruntime: native\nruns_dir: {tmp_path / 'runs'}\n")
    argv = [sys.executable, "-m", "fcgtainer", "submit", "fastcalogan", "--site", str(site),
            "--set", "particle=pion", "--set", "eta_slice=20..21", "--set", "label=LogE"]  # fmt: skip
    env = {**os.environ, "COLUMNS": "300", "FCGTAINER_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    first = done.stderr.splitlines()[0]
    assert first == (
        "error: fastcalogan: params.label: 'LogE'; valid: logE, maxE "
        "(4 of 4 tasks, the first task 0 (particle=pion,eta_slice=20))"
    ), done.stderr
    assert not (tmp_path / "runs").exists()
