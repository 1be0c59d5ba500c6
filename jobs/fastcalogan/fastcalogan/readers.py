"""Readers for the two input formats, with errors that name the file and what is wrong.

- FastCaloGAN CSV: one file per energy point,
  ``pid{pid}/eta_{min}_{max}/pid{pid}_E{p}_eta_{min}_{max}_voxalisation.csv``, no header,
  one shower per row, voxel energies in MeV; either N voxel columns (the public layout) or
  ``phiMod, eta`` then the N voxels (the ATLAS-internal one), detected per file.
- CaloChallenge dataset 1 HDF5: ``incident_energies`` (N, 1) and ``showers`` (N, voxels), MeV;
  energy points are the distinct incident energies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError
from .hparams import HParams, energy_label, voxel_scale
from .layout import Particle, csv_path, eta_bounds


@dataclass
class ShowerSet:
    """The showers of one (particle, |eta| slice), grouped by energy point.

    Parameters
    ----------
    particle : Particle
        The species (gives masses, voxel count, label scale).
    momenta : list of int
        Energy points in MeV, ascending.
    showers : list of numpy.ndarray
        Per energy point, ``(n_events, n_voxels)`` float32 voxel energies in MeV.
    """

    particle: Particle
    momenta: list[int]
    showers: list[np.ndarray]

    def split(self, holdout: float, seed: int) -> tuple[ShowerSet, ShowerSet]:
        """(training, held-out) showers: per energy point a random ``holdout`` fraction,
        at least one shower, kept apart (the same split for the same ``seed``)."""
        train, held = [], []
        for p, x in zip(self.momenta, self.showers):
            order = np.random.default_rng([seed, p]).permutation(len(x))
            n_held = min(max(1, round(holdout * len(x))), len(x) - 1) if holdout > 0 else 0
            held.append(x[np.sort(order[:n_held])])
            train.append(x[np.sort(order[n_held:])])
        return (
            ShowerSet(self.particle, list(self.momenta), train),
            ShowerSet(self.particle, list(self.momenta), held),
        )

    def label(self, momentum: int, hp: HParams) -> float:
        """Conditioning label of an energy point (over the particle's whole energy range)."""
        part = self.particle
        ekins = [part.ekin(p) for p in part.momenta()]
        return energy_label(hp.label, part.ekin(momentum), min(ekins), max(ekins))

    def scale(self, momentum: int, hp: HParams) -> float:
        """What the voxel energies (MeV) of an energy point are divided by."""
        part = self.particle
        all_momenta = part.momenta()
        mid = part.ekin(all_momenta[len(all_momenta) // 2])
        return voxel_scale(hp.voxel_normalisation, part.ekin(momentum), mid)

    def training_arrays(self, hp: HParams) -> tuple[np.ndarray, np.ndarray]:
        """Normalised showers and their labels, all energy points stacked."""
        xs, ys = [], []
        for p, x in zip(self.momenta, self.showers):
            xs.append((x / self.scale(p, hp)).astype(np.float32))
            ys.append(np.full((len(x), 1), self.label(p, hp), np.float32))
        return np.concatenate(xs), np.concatenate(ys)


#: The CSV layouts, tried in this order on each file: (name, leading non-voxel columns).
CSV_LAYOUTS = (("N voxels", 0), ("phiMod, eta + N voxels", 2))


def _parse_csv(path: Path, n_voxels: int) -> np.ndarray:
    """One CSV file as ``(rows, n_voxels)`` float32, or a DataError saying where it is bad.

    The layout (:data:`CSV_LAYOUTS`) is detected from the first row and every other row
    must have as many values; ``phiMod`` and ``eta`` are dropped.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from exc
    lines = [(number, ln) for number, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    if not lines:
        raise DataError(f"{path}: empty file (no showers)")
    first_line, first = lines[0]
    width = first.count(",") + 1
    skip = next((lead for _, lead in CSV_LAYOUTS if width == n_voxels + lead), None)
    if skip is None:
        tried = ", ".join(f"{name} ({n_voxels + lead} values)" for name, lead in CSV_LAYOUTS)
        raise DataError(
            f"{path}: line {first_line} has {width} values, no known layout (tried: {tried})"
        )
    rows = []
    for number, line in lines:
        values = line.split(",")
        if len(values) != width:
            raise DataError(
                f"{path}: line {number} has {len(values)} values, expected {width} "
                f"like line {first_line} (ragged rows)"
            )
        try:
            rows.append([float(v) for v in values[skip:]])
        except ValueError:
            bad = next(v for v in values[skip:] if not _is_number(v))
            raise DataError(f"{path}: line {number}: not a number: {bad.strip()!r}") from None
    data = np.asarray(rows, dtype=np.float64)
    non_finite = ~np.isfinite(data)
    if non_finite.any():
        row, col = (int(i) for i in np.argwhere(non_finite)[0])
        raise DataError(
            f"{path}: line {lines[row][0]}: voxel {col} is {data[row, col]} "
            f"({int(non_finite.sum())} non-finite values in the file)"
        )
    return data.astype(np.float32)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_finite(data: np.ndarray, where: str) -> None:
    bad = ~np.isfinite(data)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{where}: {int(bad.sum())} non-finite values (NaN/inf), first at row {row + 1}, "
            f"voxel {col}"
        )


def read_csv_slice(
    root: Path, part: Particle, eta_slice: int, momenta: Sequence[int] | None = None
) -> ShowerSet:
    """Read every energy point of one |eta| slice from a FastCaloGAN CSV tree.

    Parameters
    ----------
    root : pathlib.Path
        Directory holding ``pid{pid}/eta_{min}_{max}/``.
    part : Particle
        The particle (file names, voxel count).
    eta_slice : int
        Slice index 0..99.
    momenta : sequence of int, optional
        Energy points to read; all of the particle's by default.

    Returns
    -------
    ShowerSet

    Raises
    ------
    DataError
        If energy points are missing (all of them are listed), a row is ragged, a value is
        not numeric or not finite.
    """
    wanted = sorted(momenta) if momenta is not None else part.momenta()
    paths = [csv_path(root, part, p, eta_slice) for p in wanted]
    missing = [p for p, path in zip(wanted, paths) if not path.is_file()]
    if missing:
        lo, hi = eta_bounds(eta_slice)
        raise DataError(
            f"{root}: {part.name} |eta| {lo / 100:.2f}-{hi / 100:.2f}: missing energy points "
            f"{', '.join(f'E{p}' for p in missing)} (expected files like {paths[0].name})"
        )
    showers = [_parse_csv(path, part.n_voxels) for path in paths]
    return ShowerSet(part, list(wanted), showers)


def read_calochallenge(
    path: Path, part: Particle, momenta: Sequence[int] | None = None
) -> ShowerSet:
    """Read a CaloChallenge dataset 1 HDF5 file (|eta| 0.20-0.25).

    Parameters
    ----------
    path : pathlib.Path
        The ``.hdf5`` file with ``incident_energies`` (N, 1) and ``showers`` (N, voxels).
    part : Particle
        Photons (368 voxels) or pions (533).
    momenta : sequence of int, optional
        Energy points that must be present; the file's distinct energies by default.

    Returns
    -------
    ShowerSet

    Raises
    ------
    DataError
        Missing datasets, inconsistent shapes, wrong voxel count, non-finite values or
        missing energy points.
    """
    import h5py  # only this reader needs it

    try:
        with h5py.File(path, "r") as f:
            for key in ("incident_energies", "showers"):
                if key not in f:
                    raise DataError(f"{path}: no dataset {key!r} (found: {', '.join(f)})")
            energies = np.asarray(f["incident_energies"][()], np.float64).reshape(-1)
            showers = np.asarray(f["showers"][()], np.float64)
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file: {exc}") from exc
    if showers.ndim != 2 or showers.shape[0] != energies.shape[0]:
        raise DataError(
            f"{path}: showers {showers.shape} do not match incident_energies "
            f"({energies.shape[0]} events)"
        )
    if showers.shape[1] != part.n_voxels:
        raise DataError(
            f"{path}: showers have {showers.shape[1]} voxels, a {part.name} has {part.n_voxels}"
        )
    _check_finite(energies[:, None], f"{path}: incident_energies")
    _check_finite(showers, f"{path}: showers")
    present = sorted({round(e) for e in energies})
    wanted = sorted(momenta) if momenta is not None else present
    missing = sorted(set(wanted) - set(present))
    if missing:
        raise DataError(f"{path}: missing energy points {', '.join(f'E{p}' for p in missing)}")
    rounded = np.rint(energies).astype(np.int64)
    groups = [showers[rounded == p].astype(np.float32) for p in wanted]
    return ShowerSet(part, list(wanted), groups)
