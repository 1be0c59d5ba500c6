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
holdout            0.2        fraction of each energy point's showers kept out of training:
                              checkpoints are scored, selected and validated on them only
binning            null       a BoloGAN-style binning.xml (relative: inside the input ``data``):
                              voxel layout and hyperparameters of the particle's |eta|
                              region; particles beyond photon, electron, pion come from it
energy_range       null       name of the binning.xml energy range whose hyperparameters apply
fast_critic        auto       closed-form critic gradient: auto (where it applies), on, off
                              (off: the reference, automatic differentiation)
=================  =========  ==============================================================

GAN hyperparameters (``hparams.HParams``), each from the first of: the task's params (unless
null), the binning.xml, ``hparams.defaults`` (the published value for the particle, except
``hparams.DEPARTURES``):
latent_dim, generator (hidden widths, e.g. ``50:100:200``), critic (hidden widths, ``N`` for
the voxel count, e.g. ``N:N:N``), activation (relu | swish), batch_norm, batch_statistics,
lr_generator, lr_critic, beta1, beta2, gp_lambda, critic_steps, batch_size, label (logE |
maxE), voxel_normalisation (normE | midE | logE).

=================  =========  ==============================================================
name               default    meaning
=================  =========  ==============================================================
eval_events        1000       showers per energy point for chi2/ndf
log_every          50         iterations between progress lines
keep_checkpoints   2          full training states kept (generator snapshots are all kept)
jit                false      compile the training loop with XLA
precision          float32    float32 (published) or bfloat16 matrix-product operands
select             true       after training: choose the best checkpoint, export, plot
validate           true       then: CaloChallenge-style metrics on held-out showers
=================  =========  ==============================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import hparams
from .binning import read_binning
from .errors import ConfigError
from .hparams import FAST_CRITIC, LAYOUTS, PRECISIONS, HParams
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
    "fast_critic": "auto",
    "binning": None,
    "holdout": 0.2,
    "energy_range": None,
    "eval_events": 1000,
    "log_every": 50,
    "keep_checkpoints": 2,
    "jit": False,
    "precision": "float32",
    "select": True,
    "validate": True,
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
    hp: HParams
    fast_critic: str
    holdout: float
    eval_events: int
    log_every: int
    keep_checkpoints: int
    jit: bool
    precision: str
    select: bool
    validate: bool
    out_dir: Path
    gpus: int
    image_digest: str | None = None
    train_dir: Path | None = None  # a campaign's validate step: the train task's out_dir

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

    def trained_dir(self, eta_slice: int) -> Path:
        """Where one GAN was trained (its generator snapshots): this task, or in a
        campaign's validate step, the out_dir of the train task it follows."""
        return (self.train_dir or self.out_dir) / self.gan_dir(eta_slice).name

    @property
    def data_dir(self) -> Path:
        """Where the synthetic dataset is (made by the training task)."""
        return self.data or (self.train_dir or self.out_dir) / "data"

    @property
    def checkpoint_dir(self) -> Path:
        """Where the full training state of this task is checkpointed."""
        return self.out_dir / "checkpoints"


def _int(params: dict[str, Any], key: str, lo: int, hi: int | None = None) -> int:
    value = params[key]
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 1e6 iterations
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"params.{key}: expected an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f"; expected at least {lo}" if hi is None else f" out of range {lo}..{hi}"
        raise ConfigError(f"params.{key}: {value}{bound}")
    return value


def _fraction(params: dict[str, Any], key: str) -> float:
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"params.{key}: expected a fraction in [0, 1), got {value!r}")
    return float(value)


def config_from_params(
    params: dict[str, Any], out_dir: Path, gpus: int = 0, inputs: dict[str, str] | None = None
) -> TrainConfig:
    """Validate ``params`` (defaults filled in) into a TrainConfig.

    Raises
    ------
    ConfigError
        Unknown or missing keys, wrong types or values; the message names the key.
    """
    hp_names = set(hparams.names())
    known = {*_DEFAULTS, *_REQUIRED, *hp_names}
    unknown = sorted(set(params) - known)
    if unknown:
        valid = ", ".join(sorted(known))
        raise ConfigError(f"params: unknown {', '.join(unknown)}; valid: {valid}")
    missing = [k for k in _REQUIRED if k not in params]
    if missing:
        raise ConfigError(f"params: missing {', '.join(missing)}")
    p = {**_DEFAULTS, **params}
    first = _int(p, "eta_slice", 0, N_SLICES - 1)
    bound = (inputs or {}).get("data")
    base = hparams.defaults(str(p["particle"]))
    if p["binning"] is not None:
        xml_path = Path(bound) / p["binning"] if bound else Path(p["binning"])
        table = read_binning(xml_path)
        part = table.particle(str(p["particle"]), first)
        try:
            base = hparams.updated(base, table.hparams(part.name, first, p["energy_range"]))
        except ValueError as exc:
            raise ConfigError(f"{xml_path}: {part.name}: {exc}") from None
    else:
        if p["energy_range"] is not None:
            raise ConfigError("params.energy_range: needs a binning.xml (params.binning)")
        part = particle(str(p["particle"]))
    try:
        given = {k: v for k, v in params.items() if k in hp_names and v is not None}
        hp = hparams.updated(base, given)
    except ValueError as exc:
        raise ConfigError(f"params.{exc}") from None
    if p["fast_critic"] not in FAST_CRITIC:
        raise ConfigError(
            f"params.fast_critic: {p['fast_critic']!r}; valid: {', '.join(FAST_CRITIC)}"
        )
    pack = _int(p, "pack", 1, N_SLICES)
    slices = tuple(range(first, min(first + pack, N_SLICES)))
    if p["binning"] is not None and table.particle(part.name, slices[-1]) != part:
        raise ConfigError(
            f"params.pack: slices {slices[0]}..{slices[-1]} span regions of {xml_path} "
            "with different voxel layouts; pack slices of one region"
        )
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
    for key in ("jit", "select", "validate"):
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
        hp=hp,
        fast_critic=p["fast_critic"],
        holdout=_fraction(p, "holdout"),
        eval_events=_int(p, "eval_events", 10),
        log_every=_int(p, "log_every", 1),
        keep_checkpoints=_int(p, "keep_checkpoints", 1),
        jit=p["jit"],
        precision=p["precision"],
        select=p["select"],
        validate=p["validate"],
        out_dir=out_dir,
        gpus=gpus,
    )


def load_spec(path: Path) -> TrainConfig:
    """Read a spec JSON file (payload contract) into a TrainConfig."""
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the spec: {exc}") from exc
    try:
        return config_from_spec(spec)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def config_from_spec(spec: Any, resolve: bool = True) -> TrainConfig:
    """A parsed spec (payload contract) into a TrainConfig; nothing read but a binning.xml.

    ``resolve``: make ``out_dir`` absolute through symbolic links (a task does; a check at
    submit, before the run directory exists, need not).

    Raises
    ------
    ConfigError
        Naming the key that is wrong.
    """
    if not isinstance(spec, dict) or not isinstance(spec.get("params"), dict):
        raise ConfigError("a spec is a JSON object with a 'params' object")
    out = spec.get("out_dir") or "."
    gpus = spec.get("gpus") or 0
    if not isinstance(gpus, int) or gpus < 0:
        raise ConfigError(f"gpus: expected a non-negative integer, got {gpus!r}")
    inputs = spec.get("inputs") or {}
    cfg = config_from_params(
        spec["params"], Path(out).resolve() if resolve else Path(out), gpus, inputs
    )
    digest = spec.get("image_digest")
    if digest:
        cfg = replace(cfg, image_digest=str(digest))
    trained = (spec.get("upstream") or {}).get("train")
    if trained is not None:
        if not (
            isinstance(trained, list)
            and len(trained) == 1
            and isinstance(trained[0], dict)
            and isinstance(trained[0].get("out_dir"), str)
        ):
            raise ConfigError(
                "upstream.train: expected the one train task this task follows "
                f"(needs: {{train: per_task}}), got {trained!r}"
            )
        cfg = replace(cfg, train_dir=Path(trained[0]["out_dir"]))
    return cfg


def check_specs(path: Path) -> tuple[int, dict[str, list[str]]]:
    """``check --specs FILE`` (job.yaml's ``check``, run by ``fcgtainer submit``): every
    spec of a JSON-lines file validated as its task validates it when it starts, without
    TensorFlow or data. Returns the number of specs and each problem with the tasks it
    affects (``task N (name)``), in the order found.
    """
    problems: dict[str, list[str]] = {}
    n = 0
    try:
        lines = path.open()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the specs: {exc}") from exc
    with lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            n += 1
            try:
                spec = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{path}:{number}: not a JSON spec: {exc}") from exc
            try:
                config_from_spec(spec, resolve=False)
            except ConfigError as exc:
                task = f"task {spec.get('task')} ({spec.get('task_name')})"
                problems.setdefault(str(exc), []).append(task)
    return n, problems
