"""Facts about the FastCaloGAN samples: particles, energy points, |eta| slices, file names.

One GAN per (particle, |eta| slice); slices are 0.05 wide over 0-5 and named in units of
0.01: slice 4 is |eta| 0.20-0.25, directory ``eta_20_25``.
Momenta are ``2**k`` MeV (k = 6..22 for e/gamma, 8..22 for pions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

N_SLICES = 100
SLICE_WIDTH = 5  # in units of 0.01
K_MAX = 22


@dataclass(frozen=True)
class Particle:
    """A particle species with its voxelisation.

    Parameters
    ----------
    name : str
        ``photon``, ``electron`` or ``pion``.
    pid : int
        PDG id as used in the file names.
    mass : float
        Mass in MeV (kinetic energy = sqrt(p^2 + m^2) - m).
    k_min : int
        Smallest momentum exponent (p = 2**k MeV).
    layers : tuple of (int, int, int)
        (calorimeter layer, radial bins, angular bins) in voxel order.
    """

    name: str
    pid: int
    mass: float
    k_min: int
    layers: tuple[tuple[int, int, int], ...]

    @property
    def n_voxels(self) -> int:
        """Total number of voxels of one shower."""
        return sum(r * a for _, r, a in self.layers)

    def momenta(self) -> list[int]:
        """All energy points (momenta in MeV) of this particle."""
        return [2**k for k in range(self.k_min, K_MAX + 1)]

    def ekin(self, momentum: float) -> float:
        """Kinetic energy in MeV of a particle with ``momentum`` MeV."""
        return math.sqrt(momentum**2 + self.mass**2) - self.mass

    @property
    def ekin_max(self) -> float:
        """Kinetic energy of the highest energy point: labels are Ekin / ekin_max."""
        return self.ekin(2**K_MAX)


_EGAMMA_LAYERS = ((0, 8, 1), (1, 16, 10), (2, 19, 10), (3, 5, 1), (12, 5, 1))
_PION_LAYERS = (
    (0, 8, 1),
    (1, 10, 10),
    (2, 10, 10),
    (3, 5, 1),
    (12, 15, 10),
    (13, 16, 10),
    (14, 10, 1),
)

PARTICLES = {
    "photon": Particle("photon", 22, 0.0, 6, _EGAMMA_LAYERS),
    "electron": Particle("electron", 11, 0.51099895, 6, _EGAMMA_LAYERS),
    "pion": Particle("pion", 211, 139.57039, 8, _PION_LAYERS),
}


def particle(name: str) -> Particle:
    """The particle called ``name``, or a ConfigError listing the valid names."""
    try:
        return PARTICLES[name]
    except KeyError:
        raise ConfigError(
            f"unknown particle {name!r}; valid: {', '.join(sorted(PARTICLES))}"
        ) from None


def eta_bounds(eta_slice: int) -> tuple[int, int]:
    """(min, max) |eta| of a slice in units of 0.01, e.g. slice 4 -> (20, 25)."""
    if not 0 <= eta_slice < N_SLICES:
        raise ConfigError(f"eta_slice {eta_slice} out of range 0..{N_SLICES - 1}")
    return eta_slice * SLICE_WIDTH, (eta_slice + 1) * SLICE_WIDTH


def csv_path(root: Path, part: Particle, momentum: int, eta_slice: int) -> Path:
    """Where the CSV of one energy point lives under a FastCaloGAN data root."""
    lo, hi = eta_bounds(eta_slice)
    return (
        root
        / f"pid{part.pid}"
        / f"eta_{lo}_{hi}"
        / f"pid{part.pid}_E{momentum}_eta_{lo}_{hi}_voxalisation.csv"
    )
