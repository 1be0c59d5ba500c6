"""Choose the best checkpoint of a GAN by chi2/ndf, export it and draw the plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import checkpoint
from .errors import DataError
from .evaluate import evaluate
from .export import export_framework_free, export_onnx, export_saved_model, provenance
from .plots import plot_chi2_history, plot_total_energy
from .readers import ShowerSet
from .spec import TrainConfig


def select_and_export(
    cfg: TrainConfig, eta_slice: int, data: ShowerSet, train_set: ShowerSet
) -> dict[str, Any]:
    """Score every generator snapshot of one GAN, export the best, plot; return the summary.

    Parameters
    ----------
    cfg : TrainConfig
        The task (output locations, evaluation size).
    eta_slice : int
        Which GAN of the task.
    data : ShowerSet
        Its held-out reference showers (never trained on): the selection looks only at them.
    train_set : ShowerSet
        Its training showers (only their checksum goes into the exports' provenance).

    Returns
    -------
    dict
        ``best_iteration``, ``best_chi2_ndf`` and the per-checkpoint scores
        (also written to ``selection.json``).
    """
    gan_dir = cfg.gan_dir(eta_slice)
    records = checkpoint.list_records(cfg.trained_dir(eta_slice) / "generators", stem="gen")
    scored = []
    for record in records:
        try:
            snap = checkpoint.load(record)
        except ValueError as exc:
            print(f"warning: skipping {exc}", flush=True)
            continue
        scored.append((snap.iteration, evaluate(snap.arrays, cfg.hp, data, cfg.eval_events), snap))
    if not scored:
        raise DataError(f"{cfg.trained_dir(eta_slice)}: no generator snapshot to select from")
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
        "labels": [data.label(p, cfg.hp) for p in data.momenta],
        "voxel_scales": [data.scale(p, cfg.hp) for p in data.momenta],
        "hparams": cfg.hp.as_json(),
    }
    info["provenance"] = provenance(train_set.showers, cfg.image_digest)
    export_dir = gan_dir / "export"
    export_saved_model(best.arrays, cfg.hp, export_dir / "saved_model")
    try:
        onnx_check: dict[str, Any] = export_onnx(best.arrays, cfg.hp, export_dir, info)
    except ImportError as exc:  # an image without onnx/tf2onnx/onnxruntime: say so, go on
        onnx_check = {"skipped": f"ONNX export needs {exc.name}", "max_abs_diff": float("nan")}
        print(f"warning: no generator.onnx: {onnx_check['skipped']}", flush=True)
    info["onnx"] = {k: v for k, v in onnx_check.items() if k != "path"}
    export_framework_free(best.arrays, cfg.hp, export_dir, info)
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
        f"selected {name}: iteration {best_it}, chi2/ndf {best_ev.chi2_ndf:.4g} -> {export_dir}"
        f" (ONNX against TensorFlow: max abs diff {onnx_check['max_abs_diff']:.3g})",
        flush=True,
    )
    return summary


def summary_path(cfg: TrainConfig, eta_slice: int) -> Path:
    """Where :func:`select_and_export` writes its summary."""
    return cfg.gan_dir(eta_slice) / "selection.json"
