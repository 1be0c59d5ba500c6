"""``assemble``: a campaign's last step, every selected generator in one bundle.

Reads the out_dirs of the validate tasks it follows (``spec["upstream"]["validate"]``) and
writes under its own ``out_dir``::

    generators/gan-{particle}-eta{NN}/   generator.npz, generator.json (generator.onnx)
    index.json                           one entry per GAN: particle, |eta| range, selected
                                         iteration, validation figures, files and sha256
    plots/chi2_ndf_vs_eta.png            chi2/ndf of each particle's GANs over |eta|
    plots/classifier_auc_vs_eta.png      the same for the classifier AUC
    metrics.json                         the campaign's figures (for fcgtainer's report)

A GAN whose export or validation is missing is an error naming its directory: the upstream
markers said the task succeeded, so its files should be there.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import write_atomic
from .errors import ConfigError, DataError

FILES = ("generator.npz", "generator.json", "generator.onnx")
FIGURES = ("chi2_ndf", "separation_power_mean", "classifier_auc", "fpd", "kpd")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read it: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def upstream_dirs(spec_path: Path) -> tuple[list[Path], Path]:
    """The validate tasks' out_dirs and this task's out_dir, from the spec."""
    spec = _read_json(spec_path)
    entries = (spec.get("upstream") or {}).get("validate")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(
            f"{spec_path}: upstream.validate: assemble follows the validate step "
            "(needs: {validate: all} in job.yaml)"
        )
    dirs = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("out_dir"), str):
            raise ConfigError(f"{spec_path}: upstream.validate: bad entry {entry!r}")
        dirs.append(Path(entry["out_dir"]))
    out = spec.get("out_dir")
    if not isinstance(out, str):
        raise ConfigError(f"{spec_path}: out_dir: expected a path")
    return dirs, Path(out)


def _gan(gan_dir: Path, bundle: Path) -> dict[str, Any]:
    """Copy one GAN's export into the bundle; its index entry."""
    export = gan_dir / "export"
    selection = _read_json(gan_dir / "selection.json")
    validation = _read_json(gan_dir / "validation.json")
    missing = [f for f in FILES[:2] if not (export / f).is_file()]
    if missing:
        raise DataError(f"{export}: missing {', '.join(missing)}")
    target = bundle / gan_dir.name
    target.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in FILES:
        if (export / name).is_file():
            shutil.copyfile(export / name, target / name)
            files[name] = _sha256(target / name)
    eta = int(selection["eta_slice"])
    return {
        "name": gan_dir.name,
        "particle": selection["particle"],
        "pid": selection["pid"],
        "eta_slice": eta,
        "abs_eta": [round(eta * 0.05, 2), round((eta + 1) * 0.05, 2)],
        "best_iteration": selection["best_iteration"],
        "validation": {k: validation["gan"][k] for k in FIGURES},
        "untrained": {k: validation["untrained"][k] for k in FIGURES},
        "files": files,
    }


def _plot(gans: list[dict[str, Any]], figure: str, path: Path, ylabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for particle in sorted({g["particle"] for g in gans}):
        mine = sorted((g for g in gans if g["particle"] == particle), key=lambda g: g["eta_slice"])
        eta = [sum(g["abs_eta"]) / 2 for g in mine]
        line = ax.plot(eta, [g["validation"][figure] for g in mine], "o-", label=particle)
        ax.plot(
            eta,
            [g["untrained"][figure] for g in mine],
            "x:",
            color=line[0].get_color(),
            label=f"{particle}, untrained",
        )
    ax.set_xlabel("|eta| (slice centre)")
    ax.set_ylabel(ylabel)
    if figure == "chi2_ndf":
        ax.set_yscale("log")
    ax.set_title(f"{len(gans)} GAN(s): {ylabel} on held-out showers")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def assemble(spec_path: Path) -> dict[str, Any]:
    """Bundle every GAN of the upstream validate tasks; returns the index."""
    dirs, out = upstream_dirs(spec_path)
    gan_dirs = [g for d in dirs for g in sorted(d.glob("gan-*")) if g.is_dir()]
    if not gan_dirs:
        raise DataError(f"no gan-* directory under {', '.join(map(str, dirs))}")
    bundle = out / "generators"
    gans = [_gan(g, bundle) for g in gan_dirs]
    gans.sort(key=lambda g: (g["particle"], g["eta_slice"]))
    index = {"format": "fastcalogan-campaign/1", "gans": gans}
    write_atomic(out / "index.json", json.dumps(index, indent=1, sort_keys=True).encode())
    _plot(gans, "chi2_ndf", out / "plots" / "chi2_ndf_vs_eta.png", "chi2/ndf of total energy")
    _plot(gans, "classifier_auc", out / "plots" / "classifier_auc_vs_eta.png", "classifier AUC")
    chi2 = [g["validation"]["chi2_ndf"] for g in gans]
    metrics = {
        "gans": float(len(gans)),
        "chi2_ndf_median": float(np.median(chi2)),
        "chi2_ndf_worst": float(np.max(chi2)),
        "classifier_auc_mean": float(np.mean([g["validation"]["classifier_auc"] for g in gans])),
    }
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=1, sort_keys=True).encode())
    worst = max(gans, key=lambda g: g["validation"]["chi2_ndf"])
    print(
        f"assembled {len(gans)} generator(s) in {bundle}: chi2/ndf median "
        f"{metrics['chi2_ndf_median']:.3g}, worst {metrics['chi2_ndf_worst']:.3g} "
        f"({worst['name']})",
        flush=True,
    )
    return index
