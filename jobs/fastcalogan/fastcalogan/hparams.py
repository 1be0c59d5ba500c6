"""The GAN's hyperparameters: one frozen record, the published defaults per particle.

No TensorFlow import: readers, selection and export use it too. The published FastCaloGAN
configuration (BoloGAN training code): latent 50 with noise N(0.5, 0.5); generator hidden
layers 50, 100, 200; critic with 3 hidden layers of N voxels; WGAN-GP lambda 10; 5 critic
steps per generator step; Adam with learning rate 1e-4 and beta1 0.55 (beta2 and epsilon:
the usual defaults); batch 128. Pions use ReLU without batch normalisation; the e/gamma
production choice is batch normalisation + swish on every generator layer.

Every field can be set from ``job.yaml`` or ``--set`` (``spec.py``); a checkpoint and an
export record them all, and a resumed task must have the same ones (``mismatches``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

NOISE_MEAN = 0.5
NOISE_STD = 0.5
EPSILON = 1e-7
#: Precisions of the matrix-product operands (float32 is the published one).
PRECISIONS = ("float32", "bfloat16")
#: How a pack of GANs is laid out (``pack_layout``; see ``step.build_trainer``).
LAYOUTS = ("batched", "interleaved")
ACTIVATIONS = ("relu", "swish")
#: Conditioning label of an energy point (BoloGAN ``label_definition``):
#: ``logE`` = ln(E / E_min) / ln(E_max / E_min), ``maxE`` = E / E_max.
LABELS = ("logE", "maxE")
#: Voxel normalisation (BoloGAN ``voxel_normalisation``): voxels divided by ``normE`` Ekin,
#: ``midE`` the Ekin of the middle energy point, ``logE`` ln(Ekin / MeV).
VOXEL_NORMALISATIONS = ("normE", "midE", "logE")
OUTPUT_INITS = ("he", "data")
#: ``fast_critic``: the closed-form critic gradient (``auto``: wherever it applies).
FAST_CRITIC = ("auto", "on", "off")


@dataclass(frozen=True)
class HParams:
    """Hyperparameters of one GAN.

    Parameters
    ----------
    latent_dim : int
        Size of the noise vector.
    generator : tuple of int
        Widths of the generator's hidden layers (the output layer has N voxels).
    critic : tuple of int
        Widths of the critic's hidden layers; 0 stands for N, the number of voxels.
    activation : str
        Generator activation, ``relu`` or ``swish`` (the output layer included).
    batch_norm : bool
        Batch normalisation before every generator activation, as the published training
        runs it: its Keras layers are called without ``training=True``, so they normalise
        with their moving statistics, which then never update (mean 0, variance 1). Each
        unit is scaled by ``gamma / sqrt(1 + 1e-3)`` and shifted by ``beta``, both learned.
    batch_statistics : bool
        With ``batch_norm``: normalise with each batch's own mean and variance instead
        (moving averages kept for inference), as batch normalisation is usually meant.
    lr_generator, lr_critic : float
        Adam learning rates.
    beta1, beta2 : float
        Adam moment decays (both networks).
    gp_lambda : float
        Weight of the gradient penalty.
    critic_steps : int
        Critic steps per generator step.
    batch_size : int
        Showers per critic or generator batch.
    label : str
        Conditioning label of an energy point (:data:`LABELS`).
    voxel_normalisation : str
        What voxel energies are divided by (:data:`VOXEL_NORMALISATIONS`).
    output_init : str
        ``he``: He-uniform like every layer (published); ``data``: the output layer's
        weights He-uniform times 0.1 and its bias set so that the untrained generator
        emits the mean normalised shower of the training data (see the README: with
        ``he`` the first steps overshoot and kill ReLU outputs).
    """

    latent_dim: int = 50
    generator: tuple[int, ...] = (50, 100, 200)
    critic: tuple[int, ...] = (0, 0, 0)
    activation: str = "relu"
    batch_norm: bool = False
    batch_statistics: bool = False
    lr_generator: float = 1e-4
    lr_critic: float = 1e-4
    beta1: float = 0.55
    beta2: float = 0.999
    gp_lambda: float = 10.0
    critic_steps: int = 5
    batch_size: int = 128
    label: str = "maxE"
    voxel_normalisation: str = "normE"
    output_init: str = "he"

    def critic_widths(self, n_voxels: int) -> tuple[int, ...]:
        """The critic's hidden widths with 0 replaced by ``n_voxels``."""
        return tuple(w or n_voxels for w in self.critic)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples as lists) for checkpoints and exports."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def batch_dependent(self) -> bool:
        """A generated shower depends on the rest of its batch (batch statistics)."""
        return self.batch_norm and self.batch_statistics

    def mismatches(self, recorded: Mapping[str, Any]) -> list[str]:
        """``name: recorded -> this`` for every field that differs from ``recorded``.

        A record without ``batch_statistics`` normalised with batch statistics whenever
        its ``batch_norm`` was on.
        """
        if "batch_statistics" not in recorded:
            recorded = {**recorded, "batch_statistics": bool(recorded.get("batch_norm"))}
        mine = self.as_json()
        return [
            f"{k}: checkpoint {recorded.get(k)!r}, this task {v!r}"
            for k, v in mine.items()
            if recorded.get(k) != v
        ]


#: The published configurations (BoloGAN: pions ReLU without batch normalisation; e/gamma
#: batch normalisation + swish; the label Ekin / Ekin_max). Other particles (binning.xml)
#: start from PUBLISHED. ``job.yaml`` departs from them where measured (see the README).
PUBLISHED = HParams()
PUBLISHED_PER_PARTICLE = {
    "photon": replace(PUBLISHED, activation="swish", batch_norm=True),
    "electron": replace(PUBLISHED, activation="swish", batch_norm=True),
    "pion": PUBLISHED,
}


#: Where a task's defaults depart from the published configuration, because of what was
#: measured within a few thousand iterations (README "Hyperparameters"): swish for every
#: particle (ReLU outputs die), the output layer started at the mean training shower, and
#: the label ln(E/E_min)/ln(E_max/E_min). A binning.xml and the task's params come after.
DEPARTURES: dict[str, Any] = {"activation": "swish", "output_init": "data", "label": "logE"}


def defaults(particle: str) -> HParams:
    """A task's hyperparameters before its binning.xml and params: the published ones for
    ``particle`` (:data:`PUBLISHED` for particles only a binning.xml knows) with
    :data:`DEPARTURES`."""
    return replace(PUBLISHED_PER_PARTICLE.get(particle, PUBLISHED), **DEPARTURES)


def names() -> list[str]:
    """The field names, in declaration order."""
    return [f.name for f in fields(HParams)]


def _widths(value: Any, key: str) -> tuple[int, ...]:
    """``[50, 100]``, ``"50,100"``, ``"50:100"`` or ``"N:N:N"`` (N: the voxel count, kept
    as 0). On the command line use ``:`` (``--set`` reads commas as a parameter sweep)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    items: Sequence[Any] = re.split(r"[,:]", value) if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError(f"{key}: expected a list of layer widths, got {value!r}")
    out = []
    for item in items:
        text = str(item).strip()
        if text.upper() == "N":
            out.append(0)
        elif text.isdigit() and int(text) > 0:
            out.append(int(text))
        else:
            raise ValueError(f"{key}: layer width {item!r} is neither a positive integer nor N")
    return tuple(out)


def _choice(value: Any, key: str, valid: Sequence[str]) -> str:
    if value not in valid:
        raise ValueError(f"{key}: {value!r}; valid: {', '.join(valid)}")
    return str(value)


def _number(value: Any, key: str, integer: bool, lo: float, hi: float = math.inf) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key}: expected a number, got {value!r}")
    if integer and not float(value).is_integer():
        raise ValueError(f"{key}: expected an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{key}: {value} out of range [{lo}, {hi}]")
    return int(value) if integer else float(value)


def updated(base: HParams, values: Mapping[str, Any]) -> HParams:
    """``base`` with ``values`` (spec names, unchecked types) validated and applied.

    Raises
    ------
    ValueError
        A value of the wrong type or out of range; the message starts with its name.
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in ("generator", "critic"):
            out[key] = _widths(value, key)
        elif key == "activation":
            out[key] = _choice(value, key, ACTIVATIONS)
        elif key == "label":
            out[key] = _choice(value, key, LABELS)
        elif key == "voxel_normalisation":
            out[key] = _choice(value, key, VOXEL_NORMALISATIONS)
        elif key == "output_init":
            out[key] = _choice(value, key, OUTPUT_INITS)
        elif key in ("batch_norm", "batch_statistics"):
            if not isinstance(value, bool):
                raise ValueError(f"{key}: expected true or false, got {value!r}")
            out[key] = value
        elif key in ("latent_dim", "critic_steps", "batch_size"):
            out[key] = _number(value, key, True, 1)
        elif key in ("lr_generator", "lr_critic"):
            out[key] = _number(value, key, False, 1e-12, 1.0)
        elif key in ("beta1", "beta2"):
            out[key] = _number(value, key, False, 0.0, 0.999999)
        elif key == "gp_lambda":
            out[key] = _number(value, key, False, 0.0)
        else:
            raise ValueError(f"{key}: not a hyperparameter; valid: {', '.join(names())}")
    return replace(base, **out)


def energy_label(definition: str, ekin: float, ekin_min: float, ekin_max: float) -> float:
    """The conditioning label of an energy point (see :data:`LABELS`)."""
    if definition == "maxE":
        return ekin / ekin_max
    if ekin_max <= ekin_min:
        return 1.0
    return math.log(ekin / ekin_min) / math.log(ekin_max / ekin_min)


def voxel_scale(definition: str, ekin: float, ekin_mid: float) -> float:
    """What the voxel energies (MeV) of an energy point are divided by for training."""
    if definition == "midE":
        return ekin_mid
    if definition == "logE":
        return math.log(ekin)
    return ekin
