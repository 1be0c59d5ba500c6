"""Export a generator: SavedModel, ONNX (checked by onnxruntime), npz + JSON description."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import write_atomic
from .hparams import NOISE_MEAN, NOISE_STD, HParams


def layer_description(params: Mapping[str, np.ndarray], hp: HParams) -> list[dict[str, Any]]:
    """The generator as a list of dense layers (arrays named as in the npz).

    Each layer is ``act(BN(x W + b))``; batch normalisation (inference) is
    ``(y - mean) / sqrt(var + epsilon) * gamma + beta`` with the moving mean and variance.
    """
    from .model import BN_EPSILON

    layers: list[dict[str, Any]] = []
    for i in range(len(hp.generator) + 1):
        w = params[f"g_w{i}"]
        layer: dict[str, Any] = {
            "type": "dense",
            "inputs": int(w.shape[-2]),
            "outputs": int(w.shape[-1]),
            "weights": f"g_w{i}",
            "bias": f"g_b{i}",
            "activation": hp.activation,
        }
        if hp.batch_norm:
            layer["batch_norm"] = {
                "mean": f"g_mean{i}",
                "variance": f"g_var{i}",
                "gamma": f"g_gamma{i}",
                "beta": f"g_beta{i}",
                "epsilon": BN_EPSILON,
            }
        layers.append(layer)
    return layers


def export_framework_free(
    params: Mapping[str, np.ndarray], hp: HParams, out: Path, info: Mapping[str, Any]
) -> tuple[Path, Path]:
    """Write ``generator.npz`` (float32 arrays) and ``generator.json`` (how to use them).

    ``y = act(BN(x @ W + b))`` layer after layer, ``x = [noise, label]``, noise drawn from
    N(0.5, 0.5), label per energy point in ``labels``; the output times the energy point's
    ``voxel_scales`` entry is the voxel energies in MeV.
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
                "size": hp.latent_dim,
                "distribution": "normal",
                "mean": NOISE_MEAN,
                "std": NOISE_STD,
            },
            "label": {"size": 1, "definition": hp.label, "per_energy_point": "labels"},
            "order": ["noise", "label"],
        },
        "output": {
            "scale": f"multiply by the energy point's voxel_scales entry ({hp.voxel_normalisation})"
            " to get voxel energies in MeV"
        },
        "layers": layer_description(arrays, hp),
        **info,
    }
    js = out / "generator.json"
    write_atomic(js, json.dumps(doc, indent=1, sort_keys=True).encode())
    return npz, js


def export_saved_model(params: Mapping[str, np.ndarray], hp: HParams, out: Path) -> Path:
    """Write a SavedModel whose ``serving_default`` maps (noise, label) to normalised voxels."""
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
                tf.TensorSpec([None, hp.latent_dim], tf.float32, "noise"),
                tf.TensorSpec([None, 1], tf.float32, "label"),
            ]
        )
        def __call__(self, noise: tf.Tensor, label: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"voxels": generate(self.params, noise, label, hp)}

    module = Generator()
    tf.saved_model.save(module, str(out), signatures={"serving_default": module.__call__})
    return out


def provenance(data_arrays: Sequence[np.ndarray], image_digest: str | None) -> dict[str, Any]:
    """Where an export comes from: data checksum, code commit and digest, image digest.

    ``data_sha256`` hashes the training showers (float32, energy points in order);
    ``code_commit`` is the git commit of the payload's directory when git can tell (not
    inside most images), ``code_sha256`` the hash of the payload's own Python files;
    ``image_digest`` is the task's image digest when the spec or ``FCG_IMAGE_DIGEST`` gives it.
    """
    data = hashlib.sha256()
    for array in data_arrays:
        data.update(np.ascontiguousarray(array, np.float32).tobytes())
    here = Path(__file__).resolve().parent
    code = hashlib.sha256()
    for path in sorted(here.glob("*.py")):
        code.update(path.name.encode() + b"\0" + path.read_bytes())
    try:
        commit: str | None = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "data_sha256": data.hexdigest(),
        "code_commit": commit,
        "code_sha256": code.hexdigest(),
        "image_digest": image_digest or os.environ.get("FCG_IMAGE_DIGEST") or None,
    }


def export_onnx(
    params: Mapping[str, np.ndarray],
    hp: HParams,
    out: Path,
    metadata: Mapping[str, Any],
    check_rows: int = 256,
) -> dict[str, Any]:
    """Write ``generator.onnx`` and check it with onnxruntime against TensorFlow.

    The ONNX graph is converted (tf2onnx) from the same ``model.generate`` the SavedModel
    serves, with inputs ``noise`` and ``label`` and output ``voxels``; ``metadata`` (JSON
    values) goes into the model's metadata properties. Both runtimes then generate from
    the same ``check_rows`` random inputs.

    Returns
    -------
    dict
        ``path``, ``max_abs_diff`` (ONNX against TensorFlow) and ``opset``.
    """
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    from .model import generate

    opset = 17
    arrays = {
        k: np.asarray(v, np.float32).reshape(v.shape[-2:] if k.startswith("g_w") else (1, -1))
        for k, v in params.items()
    }
    signature = [
        tf.TensorSpec([None, hp.latent_dim], tf.float32, "noise"),
        tf.TensorSpec([None, 1], tf.float32, "label"),
    ]

    @tf.function(input_signature=signature)  # type: ignore[untyped-decorator]
    def generator(noise: tf.Tensor, label: tf.Tensor) -> tf.Tensor:
        # constants made inside the graph (captured tensors would become ONNX inputs)
        tensors = {k: tf.constant(v) for k, v in arrays.items()}
        return tf.identity(generate(tensors, noise, label, hp), name="voxels")

    proto, _ = tf2onnx.convert.from_function(
        generator, input_signature=signature, opset=opset, output_path=None
    )
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value, sort_keys=True)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "generator.onnx"
    write_atomic(path, proto.SerializeToString())
    onnx.checker.check_model(str(path))
    rng = np.random.default_rng(0)
    noise = rng.normal(NOISE_MEAN, NOISE_STD, (check_rows, hp.latent_dim)).astype(np.float32)
    label = rng.uniform(0.0, 1.0, (check_rows, 1)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds = dict(zip(names, (noise, label)))
    (onnx_out,) = session.run(None, feeds)
    tf_out = generator(tf.constant(noise), tf.constant(label)).numpy()
    diff = float(np.max(np.abs(onnx_out - tf_out)))
    return {"path": str(path), "max_abs_diff": diff, "opset": opset, "rows_checked": check_rows}
