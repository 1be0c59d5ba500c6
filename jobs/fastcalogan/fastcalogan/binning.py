"""A BoloGAN-style ``binning.xml``: voxel layout and GAN hyperparameters per particle/region.

The format (as the public BoloGAN and CaloChallenge files write it)::

    <Bins mergeAlphaBinsInFirstRBin="false">
      <Particle pid="2212" name="proton" mass="938.272" kMin="8" latentDim="50" ...>
        <Bin etaMin="0" etaMax="130" regionId="0" learningRate="1e-4">
          <Layer id="0" r_edges="0,5,10,30" n_bin_alpha="1"/>
          <Layer id="1" r_edges="0,2,4" n_bin_alpha="10"/>
          <Layer id="4" r_edges="0" n_bin_alpha="1"/>      <!-- no voxels -->
        </Bin>
        <EnergyRanges>
          <Range name="High12" useBatchNormalisation="True" activationFunction="swish"/>
        </EnergyRanges>
      </Particle>
    </Bins>

``<Bin pid=... name=...>`` directly under the root (the CaloChallenge files) works too.
A layer has ``(len(r_edges) - 1) * n_bin_alpha`` voxels (``mergeAlphaBinsInFirstRBin="true"``
is refused: the CSV files this payload reads do not merge); |eta| bounds are in units of
0.01. Hyperparameter attributes may sit on the particle, the region and the energy range
(later ones win):
latentDim, generator, discriminator, learningRate, batchSize, lambda, gdratio, beta,
label_definition, voxel_normalisation, useBatchNormalisation, activationFunction.
Particles beyond photons, electrons and pions come from here: ``name``, ``mass`` (MeV) and
``kMin`` (smallest momentum exponent) on the particle node.
"""

from __future__ import annotations

import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError
from .layout import PARTICLES, Particle

#: BoloGAN attribute -> ``HParams`` field, and how its values are spelled there.
_HP_ATTRIBUTES = {
    "latentDim": "latent_dim",
    "generator": "generator",
    "discriminator": "critic",
    "learningRate": ("lr_generator", "lr_critic"),
    "batchSize": "batch_size",
    "lambda": "gp_lambda",
    "gdratio": "critic_steps",
    "beta": "beta1",
    "label_definition": "label",
    "voxel_normalisation": "voxel_normalisation",
    "useBatchNormalisation": "batch_norm",
    "activationFunction": "activation",
}
_SPELLINGS = {
    "label": {"LogE": "logE", "MaxE": "maxE", "logE": "logE", "maxE": "maxE"},
    "voxel_normalisation": {"normE": "normE", "midE": "midE", "LogEnergy": "logE"},
    "activation": {"ReLU": "relu", "relu": "relu", "swish": "swish"},
}


@dataclass
class _Element:
    tag: str
    attrib: dict[str, str]
    line: int
    children: list[_Element] = field(default_factory=list)


def _parse(path: Path) -> _Element:
    """The XML as a tree of elements that remember their line."""
    root = _Element("", {}, 0)
    stack = [root]
    parser = xml.parsers.expat.ParserCreate()

    def start(tag: str, attrib: dict[str, str]) -> None:
        element = _Element(tag, attrib, parser.CurrentLineNumber)
        stack[-1].children.append(element)
        stack.append(element)

    def end(tag: str) -> None:
        stack.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(path.read_bytes(), True)
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from exc
    except xml.parsers.expat.ExpatError as exc:
        raise DataError(f"{path}: line {exc.lineno}: not well-formed XML ({exc})") from None
    if not root.children:
        raise DataError(f"{path}: no root element")
    return root.children[0]


@dataclass(frozen=True)
class Region:
    """One |eta| region of a particle: its voxel layout and hyperparameter attributes."""

    eta_min: int
    eta_max: int
    layers: tuple[tuple[int, int, int], ...]
    attributes: dict[str, str]
    line: int


@dataclass(frozen=True)
class Binning:
    """What a ``binning.xml`` says about each particle (by name)."""

    path: Path
    particles: dict[str, tuple[Particle, list[Region], dict[str, dict[str, str]]]]

    def particle(self, name: str, eta_slice: int) -> Particle:
        """The particle ``name`` with the voxel layout of the region holding ``eta_slice``."""
        part, _, _ = self._entry(name)
        region = self.region(name, eta_slice)
        return Particle(part.name, part.pid, part.mass, part.k_min, region.layers)

    def region(self, name: str, eta_slice: int) -> Region:
        """The region whose |eta| range holds the slice (bounds in units of 0.01)."""
        _, regions, _ = self._entry(name)
        lo, hi = eta_slice * 5, eta_slice * 5 + 5
        for region in regions:
            if region.eta_min <= lo and hi <= region.eta_max:
                return region
        spans = ", ".join(f"{r.eta_min}-{r.eta_max}" for r in regions)
        raise DataError(f"{self.path}: {name}: no region holds |eta| {lo}-{hi} (has {spans})")

    def hparams(self, name: str, eta_slice: int, energy_range: str | None) -> dict[str, Any]:
        """Hyperparameters (``HParams`` names) set by the particle, region and range nodes."""
        part_attrib, ranges = self._raw(name)
        region = self.region(name, eta_slice)
        merged = {**part_attrib, **region.attributes}
        if energy_range is not None:
            if energy_range not in ranges:
                valid = ", ".join(sorted(ranges)) or "none"
                raise DataError(
                    f"{self.path}: {name}: no energy range {energy_range!r} (has {valid})"
                )
            merged.update(ranges[energy_range])
        out: dict[str, Any] = {}
        for attr, value in merged.items():
            target = _HP_ATTRIBUTES.get(attr)
            if target is None:
                continue
            for key in (target,) if isinstance(target, str) else target:
                out[key] = _convert(key, value)
        return out

    def _entry(self, name: str) -> tuple[Particle, list[Region], dict[str, dict[str, str]]]:
        if name not in self.particles:
            raise DataError(
                f"{self.path}: no particle {name!r} (has {', '.join(sorted(self.particles))})"
            )
        return self.particles[name]

    def _raw(self, name: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
        _, _, ranges = self._entry(name)
        return ranges.get("", {}), {k: v for k, v in ranges.items() if k}


def _convert(key: str, value: str) -> Any:
    if key in _SPELLINGS:
        return _SPELLINGS[key].get(value, value)
    if key == "batch_norm":
        return value.strip().lower() == "true"
    if key in ("generator", "critic"):
        return value
    number = float(value)
    return int(number) if key in ("latent_dim", "batch_size", "critic_steps") else number


def _int(path: Path, element: _Element, key: str, default: int | None = None) -> int:
    value = element.attrib.get(key)
    if value is None:
        if default is not None:
            return default
        raise DataError(f"{path}: line {element.line}: <{element.tag}> needs {key}=")
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{path}: line {element.line}: {key}={value!r} is not an integer") from None


def _layer(path: Path, element: _Element) -> tuple[int, int, int]:
    """(layer id, radial bins, angular bins) of a ``<Layer>``."""
    layer = _int(path, element, "id")
    edges_text = element.attrib.get("r_edges")
    if edges_text is None:
        raise DataError(f"{path}: line {element.line}: <Layer id={layer}> needs r_edges=")
    try:
        edges = [float(v) for v in edges_text.split(",") if v.strip()]
    except ValueError:
        raise DataError(
            f"{path}: line {element.line}: r_edges={edges_text!r} are not numbers"
        ) from None
    if any(b <= a for a, b in zip(edges, edges[1:])):
        raise DataError(f"{path}: line {element.line}: r_edges={edges_text!r} do not increase")
    n_r = max(len(edges) - 1, 0)
    n_a = _int(path, element, "n_bin_alpha", 1)
    if n_a < 1:
        raise DataError(f"{path}: line {element.line}: n_bin_alpha must be >= 1")
    return layer, n_r, n_a


def read_binning(path: Path) -> Binning:
    """Read a ``binning.xml``; errors name the file and the line.

    Raises
    ------
    DataError
        Not XML, a missing or malformed attribute, a particle without a mass.
    """
    root = _parse(path)
    merge_first = root.attrib.get("mergeAlphaBinsInFirstRBin", "false").lower() == "true"
    if merge_first:
        raise DataError(
            f"{path}: line {root.line}: mergeAlphaBinsInFirstRBin=true is not supported "
            "(its first radial bin is one voxel in every layer)"
        )
    # BoloGAN: <Particle pid><Bin ...>; CaloChallenge: <Bin pid name ...> under the root.
    groups: list[tuple[_Element, list[_Element]]] = []
    direct = [c for c in root.children if c.tag == "Bin"]
    for bin_node in direct:
        groups.append((bin_node, [bin_node]))
    for node in root.children:
        if node.tag != "Bin":
            groups.append((node, [c for c in node.children if c.tag == "Bin"]))
    particles: dict[str, tuple[Particle, list[Region], dict[str, dict[str, str]]]] = {}
    for node, bins in groups:
        pid = _int(path, node, "pid")
        known = next((p for p in PARTICLES.values() if p.pid == abs(pid)), None)
        name = node.attrib.get("name") or (known.name if known else None)
        if name is None:
            raise DataError(f"{path}: line {node.line}: particle pid={pid} needs name=")
        if "mass" in node.attrib:
            try:
                mass = float(node.attrib["mass"])
            except ValueError:
                raise DataError(
                    f"{path}: line {node.line}: mass={node.attrib['mass']!r} is not a number"
                ) from None
        elif known is not None:
            mass = known.mass
        else:
            raise DataError(
                f"{path}: line {node.line}: particle {name} (pid {pid}) needs mass= in MeV"
            )
        k_min = _int(path, node, "kMin", known.k_min if known else 8)
        regions = []
        for bin_node in bins:
            layers = tuple(_layer(path, c) for c in bin_node.children if c.tag == "Layer")
            layers = tuple(layer for layer in layers if layer[1] > 0)
            if not layers:
                raise DataError(f"{path}: line {bin_node.line}: <Bin> has no layer with voxels")
            attributes = dict(bin_node.attrib) if bin_node is not node else {}
            regions.append(
                Region(
                    _int(path, bin_node, "etaMin", 0),
                    _int(path, bin_node, "etaMax", 500),
                    layers,
                    attributes,
                    bin_node.line,
                )
            )
        if not regions:
            raise DataError(f"{path}: line {node.line}: particle {name} has no <Bin>")
        ranges: dict[str, dict[str, str]] = {"": dict(node.attrib)}
        for child in node.children:
            if child.tag == "EnergyRanges":
                for rng in child.children:
                    ranges[rng.attrib.get("name", "")] = dict(rng.attrib)
        particle = Particle(name, abs(pid), mass, k_min, regions[0].layers)
        if name in particles:
            old_part, old_regions, old_ranges = particles[name]
            particles[name] = (old_part, old_regions + regions, {**old_ranges, **ranges})
        else:
            particles[name] = (particle, regions, ranges)
    if not particles:
        raise DataError(f"{path}: line {root.line}: no particle (<Particle> or <Bin pid=...>)")
    return Binning(path, particles)
