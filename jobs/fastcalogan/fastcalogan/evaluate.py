"""Best-checkpoint figure of merit: chi2/ndf of the total energy, GAN against reference.

Per energy point the reference total energies are histogrammed in 30 bins spanning the
peak (the median of the reference) +- 3 RMS; the GAN showers of the same energy go in the
same bins (values outside go into the first or last bin, so a GAN far off the peak scores
a large but finite chi2); chi2 is the unweighted-unweighted two-sample statistic (as
ROOT's ``Chi2Test`` "UU") over bins with entries, ndf = those bins - 1. chi2 and ndf are
summed over energy points; the lowest sum(chi2)/sum(ndf) wins.

chi2/ndf saturates (near 70) while the generated totals fall outside the histogram range, so
each point also keeps the mean and width of the generated and reference totals.
Every checkpoint is generated with the same noise, so checkpoints are compared on equal terms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .hparams import NOISE_MEAN, NOISE_STD, HParams
from .readers import ShowerSet

N_BINS = 30
N_RMS = 3.0


def generate_showers(
    params: Mapping[str, np.ndarray], hp: HParams, data: ShowerSet, momentum: int, n: int, seed: int
) -> np.ndarray:
    """``(n, N)`` generated voxel energies in MeV at one energy point (inference mode).

    The generator's forward pass is :func:`fastcalogan.model.generate`, the one training
    and export use; the noise is drawn from ``seed`` so every checkpoint sees the same.
    """
    import tensorflow as tf

    from .model import generate

    rng = np.random.default_rng([seed, momentum])
    noise = rng.normal(NOISE_MEAN, NOISE_STD, size=(n, hp.latent_dim)).astype(np.float32)
    label = np.full((n, 1), data.label(momentum, hp), np.float32)
    tensors = {k: tf.constant(np.asarray(v, np.float32)) for k, v in params.items()}
    out = generate(tensors, tf.constant(noise), tf.constant(label), hp).numpy()
    return np.asarray(out, np.float64) * data.scale(momentum, hp)


def chi2_uu(ref: np.ndarray, gan: np.ndarray) -> tuple[float, int]:
    """Two-sample chi2 of unweighted histograms and its ndf (bins with entries - 1)."""
    n_ref, n_gan = ref.sum(), gan.sum()
    used = (ref + gan) > 0
    if n_ref == 0 or n_gan == 0 or used.sum() < 2:
        return 0.0, 0
    r, g = ref[used].astype(np.float64), gan[used].astype(np.float64)
    chi2 = np.sum((n_gan * r - n_ref * g) ** 2 / (r + g)) / (n_ref * n_gan)
    return float(chi2), int(used.sum()) - 1


def histogram_range(ref_totals: np.ndarray) -> tuple[float, float]:
    """Peak (median) +- 3 RMS of the reference; never empty."""
    peak, rms = float(np.median(ref_totals)), float(np.std(ref_totals))
    rms = rms if rms > 0 else max(abs(peak) * 1e-3, 1e-3)
    return peak - N_RMS * rms, peak + N_RMS * rms


def _clipped_histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    inner = (edges[0] + edges[1]) / 2, (edges[-2] + edges[-1]) / 2
    return np.histogram(np.clip(values, *inner), bins=edges)[0]


@dataclass
class PointResult:
    """chi2 of one energy point, with what a plot needs."""

    momentum: int
    chi2: float
    ndf: int
    edges: np.ndarray
    ref_hist: np.ndarray
    gan_hist: np.ndarray
    ref_mean: float = 0.0
    ref_std: float = 0.0
    gan_mean: float = 0.0
    gan_std: float = 0.0


@dataclass
class Evaluation:
    """Summed chi2 and ndf over energy points."""

    points: list[PointResult] = field(default_factory=list)

    @property
    def chi2(self) -> float:
        """Sum of chi2 over energy points."""
        return float(sum(p.chi2 for p in self.points))

    @property
    def ndf(self) -> int:
        """Sum of ndf over energy points."""
        return sum(p.ndf for p in self.points)

    @property
    def chi2_ndf(self) -> float:
        """The figure of merit (infinite if nothing could be compared)."""
        return self.chi2 / self.ndf if self.ndf else float("inf")


def evaluate(
    params: Mapping[str, np.ndarray],
    hp: HParams,
    data: ShowerSet,
    max_events: int = 2000,
    seed: int = 12345,
) -> Evaluation:
    """chi2/ndf of the total energy of a generator against the reference showers.

    Parameters
    ----------
    params : mapping of str to numpy.ndarray
        Generator parameters of one GAN (``g_*``).
    hp : HParams
        Its hyperparameters (architecture, label, voxel normalisation).
    data : ShowerSet
        Reference showers (MeV) per energy point.
    max_events : int
        At most this many reference showers (and as many generated) per energy point.
    seed : int
        Seed of the generator noise, the same for every checkpoint.
    """
    result = Evaluation()
    for p, showers in zip(data.momenta, data.showers):
        ref_totals = showers[:max_events].sum(axis=1, dtype=np.float64)
        n = len(ref_totals)
        gan_totals = generate_showers(params, hp, data, p, n, seed).sum(axis=1)
        lo, hi = histogram_range(ref_totals)
        edges = np.linspace(lo, hi, N_BINS + 1)
        ref_hist = _clipped_histogram(ref_totals, edges)
        gan_hist = _clipped_histogram(gan_totals, edges)
        chi2, ndf = chi2_uu(ref_hist, gan_hist)
        result.points.append(
            PointResult(
                p,
                chi2,
                ndf,
                edges,
                ref_hist,
                gan_hist,
                float(np.mean(ref_totals)),
                float(np.std(ref_totals)),
                float(np.mean(gan_totals)),
                float(np.std(gan_totals)),
            )
        )
    return result
