"""Build a models directory: train, transpile with scikinC, compile with gcc.

``build_models(out)`` writes, for every spec in ``modelspec.MODEL_SPECS``, the
generated C++ source (``NAME.C``) and the shared library (``NAME.so``), plus the
PV smearing table and ``manifest.json`` with SHA-256 hashes. The directory is
assembled in a temporary sibling and renamed into place, so a half-built
directory is never mistaken for a good one.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import law
from .errors import LamarrError
from .manifest import sha256_file, validate_models_dir
from .modelconfig import check_models, demo_config, write_config
from .modelspec import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    MODEL_SPECS,
    PV_DB_NAME,
    PV_TABLE,
    ModelSpec,
)

Array = npt.NDArray[np.float64]

#: Training budget; "quick" is what the tests use.
BUDGETS: dict[str, dict[str, int]] = {
    "quick": {"samples": 120_000, "epochs": 12, "steps": 4000, "batch": 2048, "hidden": 48},
    "full": {"samples": 400_000, "epochs": 20, "steps": 10000, "batch": 2048, "hidden": 64},
}

_GENERATIVE_WRAPPER = """
extern "C"
FLOAT_T* %(name)s (FLOAT_T* ret, const FLOAT_T* input, const FLOAT_T* noise)
{
  FLOAT_T buf[%(n_total)d];
  int i;
  for (i = 0; i < %(n_in)d; ++i) buf[i] = input[i];
  for (i = 0; i < %(n_random)d; ++i) buf[%(n_in)d + i] = noise[i];
  return %(name)s_net (ret, buf);
}
"""


def features(table: dict[str, Array], names: tuple[str, ...]) -> Array:
    """Return the model inputs ``names`` computed from a training table."""
    apid = np.abs(table["pid"])
    columns = {
        "log10_p": np.log10(table["p"]),
        "eta": table["eta"],
        "is_e": (apid == 11).astype(np.float64),
        "is_mu": (apid == 13).astype(np.float64),
        "is_pi": (apid == 211).astype(np.float64),
        "is_k": (apid == 321).astype(np.float64),
        "is_p": (apid == 2212).astype(np.float64),
    }
    return np.column_stack([columns[name] for name in names])


def transpile(model: Any, spec: ModelSpec) -> str:
    """Return C++ source for ``model`` with the C symbol the pipeline expects.

    The scikinC header carries the generation date; it is replaced by a fixed
    line so that the same weights always give the same source and library.
    """
    import scikinC

    symbol = spec.name if spec.kind != "generative" else f"{spec.name}_net"
    source: str = scikinC.convert({symbol: model}, float_t="float", copyright="fcgtainer")
    source = re.sub(r"(File generated on )\d{4}-\d\d-\d\d \d\d:\d\d", r"\1(date elided)   ", source)
    if spec.kind == "generative":
        n_in = len(spec.inputs)
        source += _GENERATIVE_WRAPPER % {
            "name": spec.name,
            "n_in": n_in,
            "n_random": spec.n_random,
            "n_total": n_in + spec.n_random,
        }
    return source


def compile_library(source: Path, library: Path, compiler: str = "g++") -> None:
    """Compile a scikinC source into a shared library (it is C++: ``extern "C"``)."""
    argv = [compiler, "-O2", "-shared", "-fPIC", "-o", str(library), str(source), "-lm"]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LamarrError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-2000:]}")


def write_pv_table(path: Path) -> None:
    """Write the PV smearing parameterisation in the schema SQLamarr reads."""
    with sqlite3.connect(path) as db:
        db.execute(
            f"CREATE TABLE {PV_TABLE} (pvsmearing_id INTEGER PRIMARY KEY, condition TEXT, "
            "coord TEXT, mu REAL, f1 REAL, f2 REAL, sigma1 REAL, sigma2 REAL, sigma3 REAL)"
        )
        for coord, values in law.PV_SMEARING.items():
            db.execute(
                f"INSERT INTO {PV_TABLE} (condition, coord, mu, f1, f2, sigma1, sigma2, sigma3)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (law.PV_CONDITION, coord.upper(), *values),
            )
    db.close()


def _train(spec: ModelSpec, table: dict[str, Array], budget: dict[str, int], seed: int) -> Any:
    from . import training

    x = features(table, spec.inputs)
    if spec.name == "acceptance":
        return training.train_classifier(x, table["accepted"], budget["epochs"], seed=seed)
    if spec.name == "efficiency":
        sel = table["accepted"] > 0
        return training.train_classifier(
            x[sel], table["reconstructed"][sel], budget["epochs"], seed=seed
        )
    if spec.name == "covariance":
        y = (table["p_err"] / table["p"])[:, None]
        return training.train_regression(x, y, budget["epochs"], seed=seed)
    y = np.column_stack([table[name] for name in spec.outputs])
    return training.train_generator(
        x,
        y,
        spec.n_random,
        budget["steps"],
        hidden=budget["hidden"],
        batch=budget["batch"],
        seed=seed,
    )


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("tensorflow-cpu", "tensorflow", "keras", "scikinc", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def build_models(out: str | Path, budget: str = "quick", seed: int = 12345) -> dict[str, Any]:
    """Train, transpile and compile every model into ``out``; return the manifest.

    Parameters
    ----------
    out
        Target directory; it must not exist yet (models are never overwritten
        in place, a run may be reading them).
    budget
        ``"quick"`` (tests, about a minute on 2 cores) or ``"full"``.
    seed
        Seed of the training table and of every training.
    """
    target = Path(out).resolve()
    if target.exists():
        raise LamarrError(f"{target} exists; choose a new directory for a new model set")
    if budget not in BUDGETS:
        raise LamarrError(f"unknown budget {budget!r}; choose one of {sorted(BUDGETS)}")
    compiler = os.environ.get("CXX", "g++")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        table = law.training_table(BUDGETS[budget]["samples"], seed)
        models: dict[str, Any] = {}
        for offset, spec in enumerate(MODEL_SPECS):
            model = _train(spec, table, BUDGETS[budget], seed + offset)
            source = work / f"{spec.name}.C"
            source.write_text(transpile(model, spec))
            compile_library(source, work / spec.library, compiler)
            models[spec.name] = {
                "library": spec.library,
                "source": source.name,
                "symbol": spec.name,
                "kind": spec.kind,
                "inputs": list(spec.inputs),
                "outputs": list(spec.outputs),
                "n_random": spec.n_random,
            }
        write_pv_table(work / PV_DB_NAME)
        files = sorted(p.name for p in work.iterdir() if p.is_file())
        manifest = {
            "format": MANIFEST_FORMAT,
            "description": "Lamarr demo models trained on the synthetic law in lamarr_job.law",
            "law": "lamarr_job.law",
            "pv": {"file": PV_DB_NAME, "table": PV_TABLE, "condition": law.PV_CONDITION},
            "training": {"budget": budget, "seed": seed, **BUDGETS[budget]},
            "versions": _versions(),
            "models": models,
            "files": {name: sha256_file(work / name) for name in files},
        }
        (work / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        validate_models_dir(work)
        write_config(work, demo_config(work))  # the model configuration (models.yaml)
        check_models(work)
        umask = os.umask(0)
        os.umask(umask)
        work.chmod(0o777 & ~umask)  # mkdtemp made it 0700; model sets are shared
        work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest
