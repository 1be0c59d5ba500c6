"""A forced signal decay chain (the chain itself, as text: ``chain.py``): the generator-level
cut, and the truth-matched candidates of the reconstructed tracks.

With ``pythia_signal_cut: daughters-in-lhcb`` an event is kept only if the charged
final-state products of one signal head fly forward within LHCb's angular acceptance
(10 < theta < 400 mrad, as LHCb's ``DaughtersInLHCb`` generator cut), so the run's events
are signal events.

A candidate is one decay of the chain whose charged final-state products were
all reconstructed (any track type): its invariant mass from the reconstructed
momenta with the true species' masses, beside the true mass (from the true
momenta of the same particles). Truth matching uses each track's mother and
grandmother in the generator record, so a chain is at most two levels deep.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from .chain import TRACK_MASSES_MEV, Decay, final_products

THETA_MIN, THETA_MAX = 0.010, 0.400


def signal_products(chain: tuple[Decay, ...], is_charged: Callable[[int], bool]) -> list[int]:
    """Sorted |PDG ids| of the head's charged final-state products through the chain."""
    return sorted(p for p in final_products(chain, chain[0].mother) if is_charged(p))


def passes_cut(record: Any, chain: tuple[Decay, ...], charged: list[int], cut: str) -> bool:
    """Whether a Pythia event holds the whole chain: a signal head whose decays gave
    exactly ``charged`` (:func:`signal_products`), all in LHCb unless ``cut`` is none."""
    head = abs(chain[0].mother)
    intermediate = {abs(d.mother) for d in chain[1:]}
    for i in range(record.size()):
        if abs(record[i].id()) != head:
            continue
        products: list[Any] = []
        stack = list(record[i].daughterList())
        complete = bool(stack)
        while stack:
            part = record[stack.pop()]
            if abs(part.id()) in intermediate:
                complete &= bool(part.daughterList())  # an intermediate left undecayed
                stack += list(part.daughterList())
            elif part.isCharged():
                products.append(part)
        if not complete or sorted(abs(p.id()) for p in products) != charged:
            continue  # not (this copy of) the signal decay
        if cut == "none" or all(p.pz() > 0 and THETA_MIN < p.theta() < THETA_MAX for p in products):
            return True
    return False


def _mass(
    px: npt.NDArray[Any], py: npt.NDArray[Any], pz: npt.NDArray[Any], m: npt.NDArray[Any]
) -> float:
    energy = float(np.sum(np.sqrt(px**2 + py**2 + pz**2 + m**2)))
    return math.sqrt(
        max(
            energy**2 - float(np.sum(px)) ** 2 - float(np.sum(py)) ** 2 - float(np.sum(pz)) ** 2,
            0.0,
        )
    )


CANDIDATE_COLUMNS: tuple[str, ...] = (
    "event",
    "pid",
    "mother_key",
    "mass",
    "mass_true",
    "p",
    "pt",
    "n_long",
)


def candidates(
    tracks: dict[str, npt.NDArray[Any]], mc: dict[str, npt.NDArray[Any]], chain: tuple[Decay, ...]
) -> dict[str, npt.NDArray[Any]]:
    """Truth-matched candidates of every decay of the chain (see the module docstring).

    ``tracks`` and ``mc`` are the run's ``Tracks`` and ``MCTracks`` columns; a
    track's products are found by its mother (direct daughters) or grandmother
    (through one intermediate decay of the chain).
    """
    rows: list[tuple[float, ...]] = []
    evt = tracks["event"]
    truth = {c: mc[c][tracks["mc_key"].astype(np.int64)] for c in ("p", "tx", "ty")}
    pz_true = truth["p"] / np.sqrt(1 + truth["tx"] ** 2 + truth["ty"] ** 2)
    apid = np.abs(tracks["pid"]).astype(np.int64)
    masses = np.array([TRACK_MASSES_MEV.get(int(a), 0.0) for a in apid])
    for decay in chain:
        products = sorted(final_products(chain, decay.mother))
        direct = all(abs(d) not in {abs(x.mother) for x in chain} for d in decay.daughters)
        key_column = "mother_key" if direct else "gmother_key"
        pid_column = "mother_pid" if direct else "gmother_pid"
        mine = np.abs(tracks[pid_column]) == abs(decay.mother)
        if not direct:  # products reached through an intermediate decay, or directly
            mine |= np.abs(tracks["mother_pid"]) == abs(decay.mother)
        for event in np.unique(evt[mine]):
            in_event = mine & (evt == event)
            keys = np.where(
                np.abs(tracks["mother_pid"][in_event]) == abs(decay.mother),
                tracks["mother_key"][in_event],
                tracks[key_column][in_event],
            )
            for key in np.unique(keys):
                idx = np.flatnonzero(in_event)[keys == key]
                if sorted(apid[idx].tolist()) != products:
                    continue  # not every product reconstructed
                reco = _mass(tracks["px"][idx], tracks["py"][idx], tracks["pz"][idx], masses[idx])
                true = _mass(
                    truth["tx"][idx] * pz_true[idx],
                    truth["ty"][idx] * pz_true[idx],
                    pz_true[idx],
                    masses[idx],
                )
                px, py, pz = (float(np.sum(tracks[c][idx])) for c in ("px", "py", "pz"))
                rows.append(
                    (
                        float(event),
                        float(abs(decay.mother)),
                        float(key),
                        reco,
                        true,
                        math.sqrt(px**2 + py**2 + pz**2),
                        math.hypot(px, py),
                        float(np.sum(tracks["track_type"][idx] == 3)),
                    )
                )
    table = np.array(rows, dtype=np.float64).reshape(-1, len(CANDIDATE_COLUMNS))
    return {name: table[:, i] for i, name in enumerate(CANDIDATE_COLUMNS)}
