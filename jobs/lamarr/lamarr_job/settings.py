"""What the generators are asked for, as plain data (no numpy, no pyhepmc): ``check``
validates every task's spec with these on the submit host.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .chain import Decay, pythia_lines

#: Species the particle gun shoots, with their masses (GeV).
GUN_MASSES_GEV: dict[int, float] = {
    11: 0.000511,
    13: 0.10566,
    211: 0.13957,
    321: 0.49368,
    2212: 0.93827,
}

#: Luminous region (mm), used by both generators.
BEAM_SPOT_SIGMA_MM = (0.04, 0.04, 45.0)

#: Pythia processes selectable by name; extra settings can be appended.
PYTHIA_PROCESSES: dict[str, tuple[str, ...]] = {
    "minbias": ("SoftQCD:inelastic = on",),
    "ccbar": ("HardQCD:hardccbar = on", "PhaseSpace:pTHatMin = 1.0"),
    "bbbar": ("HardQCD:hardbbbar = on", "PhaseSpace:pTHatMin = 1.0"),
}


@dataclass(frozen=True)
class GunSettings:
    """Particle gun: species (PDG ids, sign drawn at random), ranges, multiplicity."""

    species: tuple[int, ...] = (211, 321, 2212, 13, 11)
    p_min: float = 2.0
    p_max: float = 200.0
    eta_min: float = 1.8
    eta_max: float = 5.2
    particles: int = 10


@dataclass(frozen=True)
class PythiaSettings:
    """Pythia 8 pp collisions: a named process plus free-form settings.

    ``keep_partons`` keeps quarks and gluons in the HepMC record (slower, same
    Lamarr output up to the order of the random draws).
    """

    process: str = "minbias"
    ecm: float = 13600.0
    settings: tuple[str, ...] = field(default_factory=tuple)
    keep_partons: bool = False
    signal: tuple[Decay, ...] = ()
    signal_cut: str = "none"

    def lines(self, seed: int) -> list[str]:
        """Return every ``readString`` line, seed and beam-spot included."""
        sx, sy, sz = BEAM_SPOT_SIGMA_MM
        return [
            f"Beams:eCM = {self.ecm}",
            *PYTHIA_PROCESSES[self.process],
            *pythia_lines(self.signal),
            *self.settings,
            "Beams:allowVertexSpread = on",
            f"Beams:sigmaVertexX = {sx}",
            f"Beams:sigmaVertexY = {sy}",
            f"Beams:sigmaVertexZ = {sz}",
            "Random:setSeed = on",
            f"Random:seed = {seed}",
            "Print:quiet = on",
            "Next:numberCount = 0",
        ]
