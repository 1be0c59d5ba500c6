"""Helpers for the Lamarr payload tests (a uniquely named module: every test
directory has its own conftest.py, so ``from conftest import`` would be ambiguous)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

JOB_DIR = Path(__file__).resolve().parents[3] / "jobs" / "lamarr"


def make_spec(
    out_dir: Path, models: Path | str, _inputs: dict[str, str] | None = None, **params: Any
) -> dict[str, Any]:
    """A spec as fcgtainer writes it (payload contract), for one run number.

    ``_inputs`` adds named inputs beside ``models`` (e.g. ``hepmc``).
    """
    return {
        "fcgtainer": 1,
        "job": "lamarr",
        "run": "test-run",
        "task": 0,
        "task_name": f"run={params.get('run')}",
        "params": params,
        "out_dir": str(out_dir),
        "job_dir": str(JOB_DIR),
        "scratch": None,
        "gpus": 0,
        "attempt": 1,
        "inputs": {"models": str(models), **(_inputs or {})},
    }


def run_task(
    out_dir: Path, models: Path, _inputs: dict[str, str] | None = None, **params: Any
) -> dict[str, Any]:
    """Run one task in-process; return its summary."""
    from lamarr_job.run import generate
    from lamarr_job.spec import config_from_spec

    return generate(config_from_spec(make_spec(out_dir, models, _inputs, **params)))


def read_trees(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """Every tree of an nTuple as numpy arrays, plus the provenance."""
    import uproot

    with uproot.open(path) as root:
        trees = {name: root[name].arrays(library="np") for name in ("MCTracks", "Tracks", "PVs")}
        trees["provenance"] = json.loads(str(root["provenance"]))
    return trees
