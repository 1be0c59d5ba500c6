"""Helpers for the tests of LHCb's chain: HepMC files of fixed-momentum particles and a
direct (ctypes) call of the LHCb parametrisation, independent of the pipeline."""

from __future__ import annotations

import ctypes
import math
from pathlib import Path
from typing import Any

import numpy as np
from lamarr_testing import JOB_DIR

LHCB_MODELS = JOB_DIR / "data" / "lhcb-2016MU"
LHCB_LIBRARY = LHCB_MODELS / "lhcb.trk.2016MU.20230128.so"
#: Momenta of the table in the shared README (MeV), for a pi+ from the origin.
TABLE_P_MEV = (2000.0, 5000.0, 20000.0, 100000.0)
TABLE_TX, TABLE_TY = 0.02, 0.01
PION_MASS_MEV = 139.57039
BEAM_PZ_MEV = 6.8e6


def fixed_momentum_event(number: int, p_mev: float, n: int, pid: int = 211) -> Any:
    """Two beam protons into the origin, then ``n`` particles at ``p_mev`` along (tx, ty)."""
    import pyhepmc

    event = pyhepmc.GenEvent(pyhepmc.Units.MEV, pyhepmc.Units.MM)
    event.event_number = number
    vertex = pyhepmc.GenVertex(pyhepmc.FourVector(0.0, 0.0, 0.0, 0.0))
    event.add_vertex(vertex)
    for sign in (1, -1):
        pz = sign * BEAM_PZ_MEV
        beam = pyhepmc.GenParticle(pyhepmc.FourVector(0, 0, pz, math.hypot(pz, 938.272)), 2212, 4)
        vertex.add_particle_in(beam)
    pz = p_mev / math.sqrt(1 + TABLE_TX**2 + TABLE_TY**2)
    for _ in range(n):
        energy = math.hypot(p_mev, PION_MASS_MEV)
        momentum = pyhepmc.FourVector(TABLE_TX * pz, TABLE_TY * pz, pz, energy)
        vertex.add_particle_out(pyhepmc.GenParticle(momentum, pid, 1))
    event.weights = [1.0]
    return event


def write_hepmc2(path: Path, events: list[Any]) -> Path:
    """Write events as HepMC2 ASCII (what SQLamarr's own loader reads)."""
    import pyhepmc

    with pyhepmc.io.WriterAsciiHepMC2(str(path)) as writer:
        for event in events:
            writer.write(event)
    return path


def write_hepmc3(path: Path, events: list[Any]) -> Path:
    """Write events as HepMC3 ASCII (gzipped if the name ends in .gz)."""
    import pyhepmc

    with pyhepmc.open(str(path), "w") as writer:
        for event in events:
            writer.write(event)
    return path


def call_model(function: str, inputs: np.ndarray, n_outputs: int) -> np.ndarray:
    """Call a deterministic model of the LHCb library row by row, as C does."""
    lib = ctypes.CDLL(str(LHCB_LIBRARY))
    fn = getattr(lib, function)
    fn.restype = ctypes.POINTER(ctypes.c_float)
    out = np.zeros((len(inputs), n_outputs), dtype=np.float32)
    row_in = (ctypes.c_float * inputs.shape[1])()
    row_out = (ctypes.c_float * n_outputs)()
    for i, row in enumerate(inputs.astype(np.float32)):
        row_in[:] = row.tolist()
        fn(row_out, row_in)
        out[i] = row_out[:]
    return out


def generator_inputs(mc: dict[str, np.ndarray]) -> np.ndarray:
    """The 12 acceptance/efficiency inputs, computed here from the nTuple's truth."""
    apid = np.abs(mc["pid"])
    pz = mc["p"] / np.sqrt(1 + mc["tx"] ** 2 + mc["ty"] ** 2)
    return np.stack(
        [
            mc["x0"],
            mc["y0"],
            mc["z0"],
            np.log10(mc["p"]),
            mc["tx"],
            mc["ty"],
            np.arcsinh(pz / np.hypot(mc["tx"] * pz, mc["ty"] * pz)),
            np.arctan2(mc["ty"], mc["tx"]),
            apid == 11,
            apid == 13,
            np.isin(apid, (211, 321, 2212)),
            mc["charge"],
        ],
        axis=1,
    ).astype(np.float64)
