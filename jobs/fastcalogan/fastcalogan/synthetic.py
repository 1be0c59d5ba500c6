"""SYNTHETIC calorimeter showers in the FastCaloGAN CSV layout, for demos and tests.

These are not Geant4 showers and carry no physics value: a toy model with the features a
GAN has to learn, so the pipeline can run end to end on a machine without ATLAS data.

- Longitudinal: a gamma-function profile ``t^(a-1) exp(-b t)`` over depth, whose maximum
  moves deeper as ``ln(E)`` (in radiation lengths for e/gamma; in interaction lengths,
  after an exponentially distributed starting point, for pions). Each layer collects the
  part of the profile inside its depth range (fixed, made-up boundaries).
- Lateral: per layer, radial bins get ``exp(-r / rho)`` with an event-by-event width;
  angular bins share the layer energy with Dirichlet fluctuations that shrink with energy.
- Sampling: a voxel collects a Poisson number of deposits of ``q`` MeV on average
  (``q`` = 10 MeV for e/gamma, about 10%/sqrt(E/GeV); 50 MeV for pions), each deposit
  gamma-distributed (shape 4), times an event-level response (leakage for e/gamma; an
  electromagnetic fraction growing with ``ln(E)`` and a lower hadronic response for pions),
  so resolution and sparsity depend on energy. Empty voxels are exactly 0 and the others
  continuous, as in Geant4 showers (a plain count of quanta made the total energy of a
  64 MeV photon a multiple of 10 MeV: a comb no continuous generator can match).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .layout import Particle, csv_path

# Made-up depth boundaries per calorimeter layer: X0 for e/gamma, lambda for pions.
_EM_DEPTH = {0: (0.0, 1.5), 1: (1.5, 6.0), 2: (6.0, 22.0), 3: (22.0, 26.0), 12: (26.0, 60.0)}
_HAD_DEPTH = {
    0: (0.0, 0.1),
    1: (0.1, 0.4),
    2: (0.4, 1.4),
    3: (1.4, 1.6),
    12: (1.6, 3.1),
    13: (3.1, 6.3),
    14: (6.3, 9.0),
}
_GRID = 240
_DEPOSIT_SHAPE = 4.0  # gamma shape of one deposit: continuous energies, exact zeros


def _layer_fractions(rng: np.random.Generator, part: Particle, ekin: float, n: int) -> np.ndarray:
    """``(n, layers)`` fraction of the visible energy in each layer."""
    hadron = part.name == "pion"
    depth = _HAD_DEPTH if hadron else _EM_DEPTH
    bounds = np.array([depth[layer] for layer, _, _ in part.layers])
    t_end = bounds[:, 1].max()
    t = (np.arange(_GRID) + 0.5) * (t_end / _GRID)
    if hadron:
        start = rng.exponential(0.6, size=(n, 1))
        b = 1.0
        t_max = 0.2 + 0.25 * np.log(ekin / 1000.0 + 1.0) + rng.normal(0, 0.15, (n, 1))
        tt = np.clip(t[None, :] - start, 0.0, None)
    else:
        b = 0.5
        offset = 0.5 if part.name == "photon" else -0.5
        t_max = np.log(ekin / 10.0) + offset + rng.normal(0, 0.8, (n, 1))
        tt = np.broadcast_to(t[None, :], (n, _GRID))
    a = 1.0 + b * np.clip(t_max, 0.3, None)
    with np.errstate(divide="ignore"):
        profile = np.where(tt > 0, np.exp((a - 1.0) * np.log(tt) - b * tt), 0.0)
    profile /= profile.sum(axis=1, keepdims=True) + 1e-30
    in_layer = (t[None, :] >= bounds[:, :1]) & (t[None, :] < bounds[:, 1:])
    fractions: np.ndarray = profile @ in_layer.T.astype(np.float64)
    return fractions


def _response(rng: np.random.Generator, part: Particle, ekin: float, n: int) -> np.ndarray:
    """``(n,)`` visible fraction of the kinetic energy."""
    if part.name == "pion":
        f_em = np.clip(0.11 * np.log(ekin / 1000.0 + 1.0) + rng.normal(0, 0.08, n), 0.0, 0.9)
        response = (f_em + (1.0 - f_em) * 0.7) * (1.0 + rng.normal(0, 0.03, n))
    else:
        response = 0.97 * (1.0 + rng.normal(0, 0.007, n))
    return np.asarray(response, np.float64)


def generate_showers(
    part: Particle, momentum: int, n_events: int, rng: np.random.Generator
) -> np.ndarray:
    """``(n_events, n_voxels)`` synthetic voxel energies in MeV for one energy point.

    Parameters
    ----------
    part : Particle
        Species and voxelisation.
    momentum : int
        Momentum in MeV.
    n_events : int
        Number of showers.
    rng : numpy.random.Generator
        Source of randomness (the output is a pure function of its state).
    """
    ekin = part.ekin(momentum)
    layer_frac = _layer_fractions(rng, part, ekin, n_events)
    visible = ekin * _response(rng, part, ekin, n_events)
    quantum = 50.0 if part.name == "pion" else 10.0
    blocks = []
    for j, (layer, n_r, n_a) in enumerate(part.layers):
        rho = 1.2 * (1.0 + 0.15 * (layer % 4)) * np.exp(rng.normal(0, 0.2, (n_events, 1)))
        radial = np.exp(-(np.arange(n_r)[None, :] + 0.5) / rho)
        radial /= radial.sum(axis=1, keepdims=True)
        concentration = 5.0 + 3.0 * np.log2(ekin / 64.0 + 1.0)
        angular = rng.dirichlet(np.full(n_a, concentration), size=n_events)
        voxels = radial[:, :, None] * angular[:, None, :]
        blocks.append(voxels.reshape(n_events, n_r * n_a) * layer_frac[:, j : j + 1])
    mean = np.concatenate(blocks, axis=1) * visible[:, None]
    deposits = rng.poisson(mean / quantum)
    energy = rng.gamma(_DEPOSIT_SHAPE * deposits) * (quantum / _DEPOSIT_SHAPE)
    return energy.astype(np.float32)


def slice_showers(
    part: Particle, momentum: int, n_events: int, eta_slice: int, rng: np.random.Generator
) -> np.ndarray:
    """Showers of one energy point of one slice (a made-up |eta| dependence of the response)."""
    showers = generate_showers(part, momentum, n_events, rng)
    showers *= 1.0 - 0.001 * eta_slice
    return showers


def write_dataset(
    root: Path,
    part: Particle,
    eta_slices: Sequence[int],
    n_events: int,
    seed: int,
    momenta: Sequence[int] | None = None,
) -> list[Path]:
    """Write synthetic CSV files for the given slices; return the paths written.

    Each file is written to a temporary name and renamed, so an interrupted run never
    leaves a half-written energy point behind. Slices differ slightly (a made-up |eta|
    dependence of the response) and each (slice, energy) has its own random stream.
    """
    written = []
    for eta_slice in eta_slices:
        for p in momenta if momenta is not None else part.momenta():
            rng = np.random.default_rng([seed, part.pid, eta_slice, p])
            showers = slice_showers(part, p, n_events, eta_slice, rng)
            path = csv_path(root, part, p, eta_slice)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".partial")
            np.savetxt(tmp, showers, fmt="%.6g", delimiter=",")
            tmp.replace(path)
            written.append(path)
    return written
