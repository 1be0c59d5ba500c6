"""A forced signal decay chain as text: ``"521 -> 443 321; 443 -> 13 -13"``, PDG ids, one
decay per ``;``, the first the head. Plain data (no numpy): ``check`` parses it on the
submit host. Each decay becomes ``ID:onMode = off`` and ``ID:onIfMatch = daughters`` for
Pythia (which applies it to the charge conjugate too).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError

#: Masses (MeV) of the particles a track can be (PDG 2024).
TRACK_MASSES_MEV = {11: 0.51099895, 13: 105.6583755, 211: 139.57039, 321: 493.677, 2212: 938.27209}
#: PDG masses (MeV, PDG 2024) of signal particles the validation compares peaks with; any
#: other is fitted and shown beside the median true mass of its candidates instead.
PDG_MASSES_MEV = {
    443: 3096.900,  # J/psi
    100443: 3686.097,  # psi(2S)
    553: 9460.40,  # Upsilon(1S)
    521: 5279.41,  # B+
    511: 5279.72,  # B0
    531: 5366.93,  # B_s0
    541: 6274.47,  # B_c+
    5122: 5619.60,  # Lambda_b0
    4122: 2286.46,  # Lambda_c+
    421: 1864.84,  # D0
    411: 1869.66,  # D+
    431: 1968.35,  # D_s+
    413: 2010.26,  # D*(2010)+
    333: 1019.461,  # phi
    313: 895.55,  # K*(892)0
    310: 497.611,  # K_S0
    3122: 1115.683,  # Lambda
}
CUTS = ("none", "daughters-in-lhcb")


@dataclass(frozen=True)
class Decay:
    """One forced decay: mother and daughters (PDG ids, as written for the particle)."""

    mother: int
    daughters: tuple[int, ...]


def parse_chain(text: str) -> tuple[Decay, ...]:
    """Parse ``"521 -> 443 321; 443 -> 13 -13"``; the first decay is the head.

    Raises
    ------
    ConfigError
        On anything else than ``ID -> ID ID ...`` decays whose mothers appear once and,
        after the head, among the daughters of an earlier decay.
    """
    decays: list[Decay] = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        head, arrow, tail = part.partition("->")
        try:
            mother = int(head)
            daughters = tuple(int(d) for d in tail.split())
        except ValueError:
            arrow = ""
        if not arrow or not daughters:
            raise ConfigError(
                f"params.pythia_signal: {part!r}: expected 'MOTHER -> DAUGHTER ...' (PDG ids)"
            )
        known = {abs(d) for decay in decays for d in decay.daughters}
        if decays and abs(mother) not in known:
            raise ConfigError(
                f"params.pythia_signal: {mother} is not a daughter of an earlier decay"
            )
        if any(abs(mother) == abs(d.mother) for d in decays):
            raise ConfigError(f"params.pythia_signal: {mother} decays twice")
        decays.append(Decay(mother, daughters))
    if not decays:
        raise ConfigError("params.pythia_signal: empty chain")
    return tuple(decays)


def pythia_lines(chain: tuple[Decay, ...]) -> list[str]:
    """Pythia settings forcing every decay of the chain."""
    lines: list[str] = []
    for decay in chain:
        lines += [
            f"{abs(decay.mother)}:onMode = off",
            f"{abs(decay.mother)}:onIfMatch = {' '.join(str(abs(d)) for d in decay.daughters)}",
        ]
    return lines


def final_products(chain: tuple[Decay, ...], mother: int) -> list[int]:
    """|PDG ids| of the final-state products of ``mother`` through the chain."""
    by_mother = {abs(d.mother): d for d in chain}
    out: list[int] = []
    for daughter in by_mother[abs(mother)].daughters:
        out += final_products(chain, daughter) if abs(daughter) in by_mother else [abs(daughter)]
    return out
