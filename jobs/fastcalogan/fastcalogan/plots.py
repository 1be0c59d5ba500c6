"""PNG plots a person can read: total energy GAN vs reference, chi2/ndf against iteration."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .evaluate import Evaluation


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _energy_label(momentum: int) -> str:
    return f"{momentum / 1000:g} GeV" if momentum >= 1000 else f"{momentum} MeV"


def plot_total_energy(evaluation: Evaluation, path: Path, title: str) -> Path:
    """One panel per energy point: reference (filled) and GAN (line) total-energy histograms.

    Parameters
    ----------
    evaluation : Evaluation
        Histograms from :func:`fastcalogan.evaluate.evaluate`.
    path : pathlib.Path
        PNG to write.
    title : str
        Figure title (particle, slice, iteration, chi2/ndf).
    """
    plt = _pyplot()
    n = len(evaluation.points)
    cols = min(5, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, point in zip(axes.flat, evaluation.points):
        centres = 0.5 * (point.edges[:-1] + point.edges[1:]) / 1000.0
        width = (point.edges[1] - point.edges[0]) / 1000.0
        ax.bar(centres, point.ref_hist, width=width, color="#9ecae1", label="reference")
        ax.step(centres, point.gan_hist, where="mid", color="#d62728", label="GAN")
        score = point.chi2 / max(point.ndf, 1)
        ax.set_title(f"{_energy_label(point.momentum)}  chi2/ndf {score:.2f}", fontsize=9)
        ax.set_xlabel("total energy [GeV]", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_chi2_history(
    iterations: Sequence[int], chi2_ndf: Sequence[float], best: int, path: Path, title: str
) -> Path:
    """chi2/ndf of every checkpoint against its iteration, the selected one marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    values = np.asarray(chi2_ndf, dtype=float)
    ax.plot(iterations, values, "o-", ms=3, color="#1f77b4")
    if best in iterations:
        ax.plot(
            [best],
            [values[list(iterations).index(best)]],
            "*",
            ms=14,
            color="#d62728",
            label=f"best: iteration {best}",
        )
        ax.legend()
    finite = values[np.isfinite(values) & (values > 0)]
    if finite.size and finite.max() > 20 * finite.min():
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("chi2 / ndf (total energy)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
