"""Models directory manifest: file hashes, model contract, validation.

A models directory holds one shared library per parameterisation, the PV
smearing table and ``manifest.json``. ``validate_models_dir`` is what a
submit-time check (or the payload itself, before any work) calls; it imports
neither TensorFlow nor SQLamarr, so the host CLI can mirror or call it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .errors import ModelsError
from .modelspec import MANIFEST_FORMAT, MANIFEST_NAME, MODEL_SPECS, PV_DB_NAME


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def required_files() -> list[str]:
    """File names every models directory must contain, manifest first."""
    return [MANIFEST_NAME, *(spec.library for spec in MODEL_SPECS), PV_DB_NAME]


def validate_models_dir(path: str | Path, check_hashes: bool = True) -> dict[str, Any]:
    """Check a models directory and return its manifest.

    Parameters
    ----------
    path
        The directory (as given by the spec's ``inputs.models``).
    check_hashes
        Recompute the SHA-256 of every listed file and compare with the manifest.

    Returns
    -------
    dict
        The parsed manifest.

    Raises
    ------
    ModelsError
        With a message naming the directory and the first problem found: missing
        directory, missing files, an unreadable manifest, a model whose inputs or
        outputs differ from what this payload's pipeline feeds it, a hash mismatch.
    """
    root = Path(path)
    if not root.is_dir():
        raise ModelsError(
            f"models directory {root} does not exist; build it with "
            f"'python3 -m lamarr_job build-models --out {root}' or stage it there"
        )
    missing = [name for name in required_files() if not (root / name).is_file()]
    if missing:
        raise ModelsError(f"models directory {root} lacks {', '.join(missing)}")
    try:
        manifest = json.loads((root / MANIFEST_NAME).read_text())
    except (OSError, ValueError) as exc:
        raise ModelsError(f"{root / MANIFEST_NAME}: unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ModelsError(f"{root / MANIFEST_NAME}: expected format {MANIFEST_FORMAT}")
    models = manifest.get("models", {})
    for spec in MODEL_SPECS:
        entry = models.get(spec.name)
        if not isinstance(entry, dict):
            raise ModelsError(f"{root / MANIFEST_NAME}: no entry for model {spec.name!r}")
        for key, expected in (
            ("inputs", list(spec.inputs)),
            ("outputs", list(spec.outputs)),
            ("n_random", spec.n_random),
        ):
            if entry.get(key) != expected:
                raise ModelsError(
                    f"{root / MANIFEST_NAME}: models.{spec.name}.{key} is "
                    f"{entry.get(key)!r}, this payload expects {expected!r}"
                )
    if check_hashes:
        for name, expected_hash in sorted(manifest.get("files", {}).items()):
            actual = sha256_file(root / name) if (root / name).is_file() else "missing"
            if actual != expected_hash:
                raise ModelsError(
                    f"{root / name}: sha256 {actual[:12]} differs from the manifest's "
                    f"{str(expected_hash)[:12]}"
                )
        unlisted = [name for name in required_files()[1:] if name not in manifest["files"]]
        if unlisted:
            raise ModelsError(f"{root / MANIFEST_NAME}: no hash for {', '.join(unlisted)}")
    return manifest


def model_hashes(manifest: dict[str, Any]) -> dict[str, str]:
    """Return ``{file: sha256}`` from a manifest, for run provenance."""
    files = manifest.get("files", {})
    return {str(k): str(v) for k, v in sorted(files.items())}
