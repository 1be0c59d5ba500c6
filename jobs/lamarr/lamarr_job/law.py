"""The known, synthetic detector law that the demo models are trained on.

Real Lamarr models are trained on detailed-simulation samples. For the demo and
the tests we draw a training table from the closed-form law below instead, so a
test can check that the whole chain (training, scikinC, gcc, SQLamarr) gives
back the law it started from. Momenta are in GeV here; the event store is MeV.

Law (charged particles, ``p`` in GeV, ``eta`` the pseudorapidity):

- acceptance probability ``A(eta) = s((eta - 2.0)/0.08) * s((4.9 - eta)/0.08)``
  with ``s`` the logistic function;
- efficiency probability, for accepted particles,
  ``E(p) = 0.96 * s((log10(p) - 0.5)/0.06)`` (50% of the plateau at 3.2 GeV);
- relative momentum resolution ``dp/p ~ N(0, sigma_p(p))`` with
  ``sigma_p(p) = 0.004 + 4e-5 * p`` (0.44% at 10 GeV, 1.2% at 200 GeV);
- slope resolution ``dtx, dty ~ N(0, sigma_t(p))``, ``sigma_t = 2e-4 + 2e-3/p``;
- the reconstructed momentum error (covariance) is ``p * sigma_p(p)``;
- PID: ``DLLK ~ N(mu_K[species], 2 + 20/p)`` and
  ``DLLmu ~ N(mu_mu[species], 1.5 + 10/p)``, independent.
- primary vertex smearing: triple Gaussian, ``PV_SMEARING`` below (mm).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Species the demo PID models know, in one-hot order.
SPECIES: tuple[int, ...] = (11, 13, 211, 321, 2212)
SPECIES_NAMES: tuple[str, ...] = ("e", "mu", "pi", "K", "p")

ETA_MIN, ETA_MAX, ETA_WIDTH = 2.0, 4.9, 0.08
EFF_PLATEAU, EFF_LOG10P, EFF_WIDTH = 0.96, 0.5, 0.06
RES_A, RES_B = 4e-3, 4e-5
SLOPE_A, SLOPE_B = 2e-4, 2e-3
DLLK_MEAN: dict[int, float] = {11: -2.0, 13: -5.0, 211: -6.0, 321: 9.0, 2212: 4.0}
DLLMU_MEAN: dict[int, float] = {11: -3.0, 13: 6.0, 211: -4.0, 321: -4.5, 2212: -5.0}

#: Triple-Gaussian PV smearing per coordinate: mu, f1, f2, sigma1, sigma2, sigma3 (mm).
PV_SMEARING: dict[str, tuple[float, float, float, float, float, float]] = {
    "x": (0.0, 0.6, 0.3, 0.010, 0.025, 0.060),
    "y": (0.0, 0.6, 0.3, 0.010, 0.025, 0.060),
    "z": (0.0, 0.6, 0.3, 0.060, 0.150, 0.400),
}
PV_CONDITION = "synthetic"


def _logistic(x: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def acceptance(eta: FloatArray) -> FloatArray:
    """Probability that a charged particle is in the tracking acceptance."""
    eta = np.asarray(eta, dtype=np.float64)
    return _logistic((eta - ETA_MIN) / ETA_WIDTH) * _logistic((ETA_MAX - eta) / ETA_WIDTH)


def efficiency(p_gev: FloatArray) -> FloatArray:
    """Probability that an accepted particle is reconstructed."""
    logp = np.log10(np.asarray(p_gev, dtype=np.float64))
    return EFF_PLATEAU * _logistic((logp - EFF_LOG10P) / EFF_WIDTH)


def sigma_p_rel(p_gev: FloatArray) -> FloatArray:
    """Relative momentum resolution sigma(p)/p."""
    return RES_A + RES_B * np.asarray(p_gev, dtype=np.float64)


def sigma_slope(p_gev: FloatArray) -> FloatArray:
    """Resolution on the track slopes tx = px/pz and ty = py/pz."""
    return SLOPE_A + SLOPE_B / np.asarray(p_gev, dtype=np.float64)


def pid_means(pid: npt.NDArray[np.int64]) -> tuple[FloatArray, FloatArray]:
    """Means of DLLK and DLLmu for each particle (by absolute PDG id)."""
    apid = np.abs(np.asarray(pid))
    dllk = np.vectorize(lambda a: DLLK_MEAN.get(int(a), 0.0), otypes=[float])(apid)
    dllmu = np.vectorize(lambda a: DLLMU_MEAN.get(int(a), 0.0), otypes=[float])(apid)
    return dllk, dllmu


def pid_widths(p_gev: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Widths of DLLK and DLLmu as a function of momentum."""
    p = np.asarray(p_gev, dtype=np.float64)
    return 2.0 + 20.0 / p, 1.5 + 10.0 / p


def training_table(n: int, seed: int) -> dict[str, FloatArray]:
    """Draw a synthetic training table (generator level and reconstructed).

    Parameters
    ----------
    n
        Number of particles.
    seed
        Seed of the numpy generator; the table is a pure function of ``(n, seed)``.

    Returns
    -------
    dict of str to ndarray
        Columns ``pid, p, eta, tx, ty, accepted, reconstructed, dp_rel, dtx, dty,
        p_err, dllk, dllmu`` (momenta in GeV).
    """
    rng = np.random.default_rng(seed)
    pid = rng.choice(np.array(SPECIES), size=n, p=[0.1, 0.1, 0.5, 0.2, 0.1])
    p = 10 ** rng.uniform(0.0, np.log10(250.0), n)
    eta = rng.uniform(1.5, 5.5, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    theta = 2 * np.arctan(np.exp(-eta))
    tx = np.tan(theta) * np.cos(phi)
    ty = np.tan(theta) * np.sin(phi)
    accepted = rng.uniform(size=n) < acceptance(eta)
    reconstructed = accepted & (rng.uniform(size=n) < efficiency(p))
    dp_rel = rng.normal(size=n) * sigma_p_rel(p)
    s_t = sigma_slope(p)
    dtx = rng.normal(size=n) * s_t
    dty = rng.normal(size=n) * s_t
    mk, mm = pid_means(pid)
    wk, wm = pid_widths(p)
    return {
        "pid": pid.astype(np.float64),
        "p": p,
        "eta": eta,
        "tx": tx,
        "ty": ty,
        "accepted": accepted.astype(np.float64),
        "reconstructed": reconstructed.astype(np.float64),
        "dp_rel": dp_rel,
        "dtx": dtx,
        "dty": dty,
        "p_err": p * sigma_p_rel(p),
        "dllk": mk + wk * rng.normal(size=n),
        "dllmu": mm + wm * rng.normal(size=n),
    }
