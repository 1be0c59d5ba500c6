"""The momentum scale of LHCb's tracking parametrisation, by direct calls of its resolution
model: the median of dp/p for long tracks, per species flag and momentum.

    python benchmarks/lamarr_momentum_scale.py [--tx 0.02] [--ty 0.01] [--samples 20000]

The ``resolution`` function of ``jobs/lamarr/data/lhcb-2016MU/lhcb.trk.2016MU.20230128.so``
is called through ctypes as SQLamarr's GenerativePlugin calls it: the 12 inputs (state at
the point closest to the beam, here the origin; tx, ty; log10 p in MeV; is_e, is_mu, is_h;
long, upstream, downstream) and 128 standard normal noise values. A median dp/p away from
zero is a shift of the reconstructed momentum scale, which an invariant mass inherits.
"""

from __future__ import annotations

import argparse
import ctypes
from pathlib import Path

import numpy as np

LIBRARY = (
    Path(__file__).resolve().parents[1] / "jobs/lamarr/data/lhcb-2016MU/lhcb.trk.2016MU.20230128.so"
)
SPECIES = {"muon": (0.0, 1.0, 0.0), "hadron": (0.0, 0.0, 1.0)}
MOMENTA_GEV = (3, 5, 10, 20, 50)
NOISE = 128


def dp_over_p(tx: float, ty: float, p_mev: float, flags: tuple[float, ...], n: int) -> np.ndarray:
    """dp/p of ``n`` long tracks from the origin, one model call each."""
    fn = ctypes.CDLL(str(LIBRARY)).resolution
    fn.restype = ctypes.POINTER(ctypes.c_float)
    inputs = (ctypes.c_float * 12)(0.0, 0.0, 0.0, tx, ty, np.log10(p_mev), *flags, 1.0, 0.0, 0.0)
    noise = (ctypes.c_float * NOISE)()
    out = (ctypes.c_float * 9)()
    rng = np.random.default_rng(1)
    dp = np.empty(n)
    for i in range(n):
        noise[:] = rng.standard_normal(NOISE).astype(np.float32).tolist()
        fn(out, inputs, noise)
        dp[i] = out[5]  # dx, dy, dz, dtx, dty, dp, ...
    return dp / p_mev


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tx", type=float, default=0.02)
    parser.add_argument("--ty", type=float, default=0.01)
    parser.add_argument("--samples", type=int, default=20000)
    opts = parser.parse_args()
    print(f"long tracks from the origin, tx {opts.tx}, ty {opts.ty}, {opts.samples} calls each")
    print("species  p [GeV]  median dp/p   half 16-84%")
    for name, flags in SPECIES.items():
        for p_gev in MOMENTA_GEV:
            ratio = dp_over_p(opts.tx, opts.ty, p_gev * 1000.0, flags, opts.samples)
            lo, hi = np.percentile(ratio, [16, 84])
            # the median's standard error, from the central interval's width
            err = 1.2533 * (hi - lo) / 2 / np.sqrt(opts.samples)
            print(
                f"{name:7}  {p_gev:7}  {100 * np.median(ratio):+.3f}% +- {100 * err:.3f}%"
                f"  {100 * (hi - lo) / 2:.2f}%"
            )


if __name__ == "__main__":
    main()
