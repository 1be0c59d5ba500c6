"""Choose the best checkpoint of a GAN by chi2/ndf, export it and draw the plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import checkpoint
from .errors import DataError
from .evaluate import evaluate
from .export import export_framework_free, export_saved_model
from .plots import plot_chi2_history, plot_total_energy
from .readers import ShowerSet
from .spec import TrainConfig


def select_and_export(cfg: TrainConfig, eta_slice: int, data: ShowerSet) -> dict[str, Any]:
    """Score every generator snapshot of one GAN, export the best, plot; return the summary.

    Parameters
    ----------
    cfg : TrainConfig
        The task (output locations, evaluation size).
    eta_slice : int
        Which GAN of the task.
    data : ShowerSet
        Its reference showers.

    Returns
    -------
    dict
        ``best_iteration``, ``best_chi2_ndf`` and the per-checkpoint scores
        (also written to ``selection.json``).
    """
    gan_dir = cfg.gan_dir(eta_slice)
    records = checkpoint.list_records(gan_dir / "generators", stem="gen")
    scored = []
    for record in records:
        try:
            snap = checkpoint.load(record)
        except ValueError as exc:
            print(f"warning: skipping {exc}", flush=True)
            continue
        scored.append((snap.iteration, evaluate(snap.arrays, data, cfg.eval_events), snap))
    if not scored:
        raise DataError(f"{gan_dir}: no generator snapshot to select from")
    best_it, best_ev, best = min(scored, key=lambda x: (x[1].chi2_ndf, x[0]))
    name = f"{cfg.particle.name} |eta| {eta_slice * 0.05:.2f}-{(eta_slice + 1) * 0.05:.2f}"
    info = {
        "particle": cfg.particle.name,
        "pid": cfg.particle.pid,
        "eta_slice": eta_slice,
        "iteration": best_it,
        "chi2": best_ev.chi2,
        "ndf": best_ev.ndf,
        "chi2_ndf": best_ev.chi2_ndf,
        "ekin_max": cfg.particle.ekin_max,
        "n_voxels": cfg.particle.n_voxels,
        "momenta": list(data.momenta),
    }
    export_dir = gan_dir / "export"
    export_framework_free(best.arrays, export_dir, info)
    export_saved_model(best.arrays, export_dir / "saved_model")
    plot_total_energy(
        best_ev,
        gan_dir / "plots" / "total_energy.png",
        f"{name}, iteration {best_it}: chi2/ndf {best_ev.chi2_ndf:.3g} (SYNTHETIC data)"
        if cfg.dataset == "synthetic"
        else f"{name}, iteration {best_it}: chi2/ndf {best_ev.chi2_ndf:.3g}",
    )
    plot_chi2_history(
        [s[0] for s in scored],
        [s[1].chi2_ndf for s in scored],
        best_it,
        gan_dir / "plots" / "chi2_vs_iteration.png",
        f"{name}: best checkpoint",
    )
    summary = {
        **info,
        "best_iteration": best_it,
        "best_chi2_ndf": best_ev.chi2_ndf,
        "checkpoints": [
            {"iteration": it, "chi2": ev.chi2, "ndf": ev.ndf, "chi2_ndf": ev.chi2_ndf}
            for it, ev, _ in scored
        ],
    }
    checkpoint.write_atomic(gan_dir / "selection.json", json.dumps(summary, indent=1).encode())
    print(
        f"selected {name}: iteration {best_it}, chi2/ndf {best_ev.chi2_ndf:.4g} -> {export_dir}",
        flush=True,
    )
    return summary


def summary_path(cfg: TrainConfig, eta_slice: int) -> Path:
    """Where :func:`select_and_export` writes its summary."""
    return cfg.gan_dir(eta_slice) / "selection.json"
