"""Export a generator: a TensorFlow SavedModel and a framework-free npz + JSON description."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import write_atomic
from .hparams import GENERATOR_HIDDEN, LATENT_DIM, NOISE_MEAN, NOISE_STD


def layer_description(params: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """The generator as a list of dense layers (arrays named as in the npz)."""
    layers = []
    for i in range(len(GENERATOR_HIDDEN) + 1):
        w = params[f"g_w{i}"]
        layers.append(
            {
                "type": "dense",
                "inputs": int(w.shape[0]),
                "outputs": int(w.shape[1]),
                "weights": f"g_w{i}",
                "bias": f"g_b{i}",
                "activation": "relu",
            }
        )
    return layers


def export_framework_free(
    params: Mapping[str, np.ndarray], out: Path, info: Mapping[str, Any]
) -> tuple[Path, Path]:
    """Write ``generator.npz`` (float32 arrays) and ``generator.json`` (how to use them).

    ``y = relu(x @ W + b)`` layer after layer, ``x = [noise (50), label (1)]``, noise drawn
    from N(0.5, 0.5), label = Ekin / Ekin_max; the output times Ekin is the voxel energies
    in MeV.
    """
    out.mkdir(parents=True, exist_ok=True)
    arrays = {
        k: np.asarray(v, np.float32).reshape(v.shape[-2:])
        if k.startswith("g_w")
        else np.asarray(v, np.float32).reshape(-1)
        for k, v in params.items()
    }
    npz = out / "generator.npz"
    with open(npz.with_suffix(".npz.part"), "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy stubs reserve allow_pickle
    npz.with_suffix(".npz.part").replace(npz)
    doc = {
        "format": "fastcalogan-generator/1",
        "input": {
            "noise": {
                "size": LATENT_DIM,
                "distribution": "normal",
                "mean": NOISE_MEAN,
                "std": NOISE_STD,
            },
            "label": {"size": 1, "definition": "Ekin / ekin_max"},
            "order": ["noise", "label"],
        },
        "output": {"scale": "multiply by Ekin [MeV] to get voxel energies in MeV"},
        "layers": layer_description(arrays),
        **info,
    }
    js = out / "generator.json"
    write_atomic(js, json.dumps(doc, indent=1, sort_keys=True).encode())
    return npz, js


def export_saved_model(params: Mapping[str, np.ndarray], out: Path) -> Path:
    """Write a SavedModel whose ``serving_default`` maps (noise, label) to voxels / Ekin."""
    import tensorflow as tf

    from .model import generate

    class Generator(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(name="fastcalogan_generator")
            self.params = {
                k: tf.Variable(
                    np.asarray(v, np.float32).reshape(
                        v.shape[-2:] if k.startswith("g_w") else (1, -1)
                    ),
                    trainable=False,
                    name=k,
                )
                for k, v in params.items()
            }

        @tf.function(  # type: ignore[untyped-decorator]
            input_signature=[
                tf.TensorSpec([None, LATENT_DIM], tf.float32, "noise"),
                tf.TensorSpec([None, 1], tf.float32, "label"),
            ]
        )
        def __call__(self, noise: tf.Tensor, label: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"voxels": generate(self.params, noise, label)}

    module = Generator()
    tf.saved_model.save(module, str(out), signatures={"serving_default": module.__call__})
    return out
