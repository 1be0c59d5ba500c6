"""The task spec (docs/payload-contract.md) turned into a validated training configuration.

Parameters (``params`` of the spec; unknown names are errors):

=================  =========  ==============================================================
name               default    meaning
=================  =========  ==============================================================
particle           required   photon, electron or pion
eta_slice          required   first |eta| slice 0..99 (0.05 wide)
pack               1          train slices eta_slice .. eta_slice+pack-1 in one process
pack_layout        auto       batched (one batched model: fills a GPU), interleaved (each
                              GAN's own graph, side by side: the faster on CPU cores), or
                              auto: batched when the task has GPUs, interleaved otherwise
iterations         300        generator steps (each with 5 critic steps)
checkpoint_every   100        iterations between checkpoints (1000 in production)
seed               1          seed of weights, batches and noise
dataset            synthetic  synthetic | csv | calochallenge
data               null       CSV root or HDF5 file; relative: inside the input ``data``
events_per_energy  1000       synthetic showers per energy point
energies           null       subset of momentum exponents k (p = 2**k MeV), e.g. [8, 12]
batch_size         128        showers per batch
eval_events        1000       showers per energy point for chi2/ndf
log_every          50         iterations between progress lines
keep_checkpoints   2          full training states kept (generator snapshots are all kept)
jit                false      compile the training loop with XLA
precision          float32    float32 (published) or bfloat16 matrix-product operands
select             true       after training: choose the best checkpoint, export, plot
=================  =========  ==============================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .hparams import LAYOUTS, PRECISIONS
from .layout import K_MAX, N_SLICES, Particle, particle

_DEFAULTS: dict[str, Any] = {
    "pack": 1,
    "pack_layout": "auto",
    "iterations": 300,
    "checkpoint_every": 100,
    "seed": 1,
    "dataset": "synthetic",
    "data": None,
    "events_per_energy": 1000,
    "energies": None,
    "batch_size": 128,
    "eval_events": 1000,
    "log_every": 50,
    "keep_checkpoints": 2,
    "jit": False,
    "precision": "float32",
    "select": True,
}
_REQUIRED = ("particle", "eta_slice")
_DATASETS = ("synthetic", "csv", "calochallenge")
_PACK_LAYOUTS = ("auto", *LAYOUTS)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training task needs, validated."""

    particle: Particle
    eta_slices: tuple[int, ...]
    pack_layout: str
    iterations: int
    checkpoint_every: int
    seed: int
    dataset: str
    data: Path | None
    events_per_energy: int
    momenta: tuple[int, ...]
    batch_size: int
    eval_events: int
    log_every: int
    keep_checkpoints: int
    jit: bool
    precision: str
    select: bool
    out_dir: Path
    gpus: int

    @property
    def packed(self) -> bool:
        """True when several slices are trained together (see ``pack_layout``)."""
        return len(self.eta_slices) > 1

    def gan_key(self, eta_slice: int) -> int:
        """Key of a GAN's weights and random streams: the same alone or in a pack."""
        return self.seed * 1_000_003 + self.particle.pid * 1000 + eta_slice

    def gan_dir(self, eta_slice: int) -> Path:
        """Output directory of one GAN (snapshots, export, plots)."""
        return self.out_dir / f"gan-{self.particle.name}-eta{eta_slice:02d}"

    @property
    def checkpoint_dir(self) -> Path:
        """Where the full training state of this task is checkpointed."""
        return self.out_dir / "checkpoints"


def _int(params: dict[str, Any], key: str, lo: int, hi: int | None = None) -> int:
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"params.{key}: expected an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ConfigError(f"params.{key}: {value} out of range {lo}..{hi if hi else ''}")
    return value


def config_from_params(
    params: dict[str, Any], out_dir: Path, gpus: int = 0, inputs: dict[str, str] | None = None
) -> TrainConfig:
    """Validate ``params`` (defaults filled in) into a TrainConfig.

    Raises
    ------
    ConfigError
        Unknown or missing keys, wrong types or values; the message names the key.
    """
    unknown = sorted(set(params) - set(_DEFAULTS) - set(_REQUIRED))
    if unknown:
        valid = ", ".join(sorted([*_DEFAULTS, *_REQUIRED]))
        raise ConfigError(f"params: unknown {', '.join(unknown)}; valid: {valid}")
    missing = [k for k in _REQUIRED if k not in params]
    if missing:
        raise ConfigError(f"params: missing {', '.join(missing)}")
    p = {**_DEFAULTS, **params}
    part = particle(str(p["particle"]))
    first = _int(p, "eta_slice", 0, N_SLICES - 1)
    pack = _int(p, "pack", 1, N_SLICES)
    slices = tuple(range(first, min(first + pack, N_SLICES)))
    if p["dataset"] not in _DATASETS:
        raise ConfigError(f"params.dataset: {p['dataset']!r}; valid: {', '.join(_DATASETS)}")
    momenta = part.momenta()
    if p["energies"] is not None:
        ks = p["energies"]
        if (
            not isinstance(ks, list)
            or not ks
            or not all(isinstance(k, int) and part.k_min <= k <= K_MAX for k in ks)
        ):
            raise ConfigError(
                f"params.energies: expected a list of exponents {part.k_min}..{K_MAX}, got {ks!r}"
            )
        momenta = [2**k for k in sorted(set(ks))]
    data = p["data"]
    bound = (inputs or {}).get("data")
    if p["dataset"] != "synthetic" and bound:  # synthetic data goes to out_dir/data
        # A relative path names a file or directory inside the (bound) input "data".
        data = str(Path(bound) / data) if data is not None else bound
    if p["dataset"] != "synthetic" and not data:
        raise ConfigError(f"params.data: dataset {p['dataset']} needs a data path")
    if p["dataset"] == "calochallenge" and len(slices) > 1:
        raise ConfigError("params.pack: a CaloChallenge file holds a single |eta| slice")
    if p["pack_layout"] not in _PACK_LAYOUTS:
        raise ConfigError(
            f"params.pack_layout: {p['pack_layout']!r}; valid: {', '.join(_PACK_LAYOUTS)}"
        )
    layout = p["pack_layout"]
    if layout == "auto":  # a GPU wants one batched model; CPU cores run graphs side by side
        layout = "batched" if gpus else "interleaved"
    if p["precision"] not in PRECISIONS:
        raise ConfigError(f"params.precision: {p['precision']!r}; valid: {', '.join(PRECISIONS)}")
    for key in ("jit", "select"):
        if not isinstance(p[key], bool):
            raise ConfigError(f"params.{key}: expected true or false, got {p[key]!r}")
    return TrainConfig(
        particle=part,
        eta_slices=slices,
        pack_layout=layout,
        iterations=_int(p, "iterations", 1),
        checkpoint_every=_int(p, "checkpoint_every", 1),
        seed=_int(p, "seed", 0, 2**31 - 1),
        dataset=p["dataset"],
        data=Path(data) if data else None,
        events_per_energy=_int(p, "events_per_energy", 1),
        momenta=tuple(momenta),
        batch_size=_int(p, "batch_size", 1),
        eval_events=_int(p, "eval_events", 10),
        log_every=_int(p, "log_every", 1),
        keep_checkpoints=_int(p, "keep_checkpoints", 1),
        jit=p["jit"],
        precision=p["precision"],
        select=p["select"],
        out_dir=out_dir,
        gpus=gpus,
    )


def load_spec(path: Path) -> TrainConfig:
    """Read a spec JSON file (payload contract) into a TrainConfig."""
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the spec: {exc}") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("params"), dict):
        raise ConfigError(f"{path}: a spec is a JSON object with a 'params' object")
    out = spec.get("out_dir") or "."
    gpus = spec.get("gpus") or 0
    if not isinstance(gpus, int) or gpus < 0:
        raise ConfigError(f"{path}: gpus: expected a non-negative integer, got {gpus!r}")
    inputs = spec.get("inputs") or {}
    try:
        return config_from_params(spec["params"], Path(out).resolve(), gpus, inputs)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
