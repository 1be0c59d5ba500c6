"""The payload honours its spec: reproducibility, banned runs, config errors, Pythia."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from lamarr_testing import make_spec, read_trees, run_task

pytestmark = pytest.mark.workload


def _main(spec: dict, tmp_path: Path) -> int:
    from lamarr_job.__main__ import main

    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return main(["generate", "--spec", str(path)])


def test_same_run_number_gives_identical_contents(tmp_path: Path, models_dir: Path) -> None:
    first = run_task(tmp_path / "a", models_dir, run=7, events=60, batch_size=25)
    second = run_task(tmp_path / "b", models_dir, run=7, events=60, batch_size=25)
    other = run_task(tmp_path / "c", models_dir, run=8, events=60, batch_size=25)
    a = read_trees(tmp_path / "a" / first["ntuple"])
    b = read_trees(tmp_path / "b" / second["ntuple"])
    c = read_trees(tmp_path / "c" / other["ntuple"])
    for tree in ("MCTracks", "Tracks", "PVs"):
        assert a[tree].keys() == b[tree].keys()
        for column in a[tree]:
            assert np.array_equal(a[tree][column], b[tree][column]), (tree, column)
    assert a["provenance"] == b["provenance"]
    assert not np.array_equal(a["MCTracks"]["p"], c["MCTracks"]["p"])
    assert a["provenance"]["seeds"] != c["provenance"]["seeds"]


def test_provenance_records_settings_seeds_and_model_hashes(
    tmp_path: Path, models_dir: Path
) -> None:
    summary = run_task(tmp_path, models_dir, run=9, events=5, event_type="my-label")
    provenance = read_trees(tmp_path / summary["ntuple"])["provenance"]
    manifest = json.loads((models_dir / "manifest.json").read_text())
    assert provenance["models"]["sha256"] == manifest["files"]
    assert provenance["settings"]["event_type"] == "my-label"
    assert provenance["settings"]["generator"]["kind"] == "gun"
    assert set(provenance["seeds"]) == {"generator", "pythia", "sqlamarr"}
    assert json.loads((tmp_path / "summary.json").read_text())["provenance"] == provenance


def test_banned_run_is_skipped(tmp_path: Path, models_dir: Path) -> None:
    summary = run_task(tmp_path, models_dir, run=13, events=5, banned_runs=[13, 14])
    assert summary["skipped"] is True
    assert not list(tmp_path.glob("*.root"))
    assert json.loads((tmp_path / "summary.json").read_text())["skipped"] is True


def test_missing_models_is_a_configuration_error(tmp_path: Path) -> None:
    spec = make_spec(tmp_path / "out", tmp_path / "no-models", run=1, events=5)
    assert _main(spec, tmp_path) == 2
    assert not (tmp_path / "out" / "lamarr_run000001.root").exists()


def test_corrupted_models_are_a_configuration_error(tmp_path: Path, models_dir: Path) -> None:
    broken = tmp_path / "models"
    shutil.copytree(models_dir, broken)
    (broken / "pid.so").write_bytes(b"not a library")
    assert _main(make_spec(tmp_path / "out", broken, run=1, events=5), tmp_path) == 2


@pytest.mark.parametrize(
    "params",
    [
        {"run": 1, "events": 0},
        {"run": 1, "unknown_key": 3},
        {"events": 5},
        {"run": 1, "generator": "geant4"},
        {"run": 1, "gun_species": [22]},
        {"run": 1, "pythia_settings": ["Random:seed = 3"]},
    ],
)
def test_bad_params_are_configuration_errors(
    tmp_path: Path, models_dir: Path, params: dict
) -> None:
    assert _main(make_spec(tmp_path / "out", models_dir, **params), tmp_path) == 2


def test_spec_path_from_environment(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lamarr_job.__main__ import main

    path = tmp_path / "spec.json"
    path.write_text(json.dumps(make_spec(tmp_path / "out", models_dir, run=2, events=3)))
    monkeypatch.setenv("FCGTAINER_SPEC", str(path))
    assert main(["generate", "--spec", str(path)]) == 0
    assert (tmp_path / "out" / "lamarr_run000002.root").is_file()


def test_pythia_minimum_bias_run(tmp_path: Path, models_dir: Path) -> None:
    summary = run_task(
        tmp_path,
        models_dir,
        run=3,
        events=12,
        batch_size=5,
        generator="pythia",
        event_type="minbias",
        keep_hepmc=True,
    )
    trees = read_trees(tmp_path / summary["ntuple"])
    assert summary["events"] == 12
    assert summary["primary_vertices"] == 12
    assert summary["charged_particles"] > 12 * 5
    assert summary["tracks"] > 0
    assert "SoftQCD:inelastic = on" in trees["provenance"]["settings"]["generator"]["lines"]
    assert len(list((tmp_path / "hepmc").glob("*.hepmc2"))) == 3


def test_pythia_hepmc_has_one_beam_pair_and_connected_particles() -> None:
    from lamarr_job.generators import PythiaSettings, pythia_events, start_pythia

    pythia, _ = start_pythia(PythiaSettings(), seed=42)
    for event in pythia_events(pythia, PythiaSettings(), 5):
        beams = [p for p in event.particles if p.status == 4]
        assert [p.pid for p in beams] == [2212, 2212]
        orphans = [
            p for p in event.particles if p.production_vertex is None or p.production_vertex.id == 0
        ]
        assert orphans == beams
        finals = [p for p in event.particles if p.status == 1]
        assert all(p.end_vertex is None for p in finals)


def test_pythia_heavy_flavour_with_extra_settings(tmp_path: Path, models_dir: Path) -> None:
    summary = run_task(
        tmp_path,
        models_dir,
        run=4,
        events=4,
        generator="pythia",
        pythia_process="bbbar",
        pythia_settings=["PhaseSpace:pTHatMin = 5.0"],
        event_type="bbbar",
    )
    lines = read_trees(tmp_path / summary["ntuple"])["provenance"]["settings"]["generator"]["lines"]
    assert "HardQCD:hardbbbar = on" in lines
    assert "PhaseSpace:pTHatMin = 5.0" in lines
    assert summary["events"] == 4
    assert summary["tracks"] > 0


def test_sigterm_cleans_the_work_directory(tmp_path: Path, models_dir: Path) -> None:
    """An evicted task leaves nothing in its scratch (which may be /dev/shm)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from lamarr_testing import JOB_DIR

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    spec = make_spec(tmp_path / "out", models_dir, run=1, events=200000, batch_size=100)
    spec["scratch"] = str(scratch)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(JOB_DIR)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lamarr_job", "generate", "--spec", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not list(scratch.glob("lamarr-*/events.db")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(scratch.glob("lamarr-*")), "the task never started"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert list(scratch.iterdir()) == []
    assert not list((tmp_path / "out").glob("*.root"))
