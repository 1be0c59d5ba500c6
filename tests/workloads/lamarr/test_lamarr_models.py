"""Model directory: build output, manifest, validation messages, compiled functions."""

from __future__ import annotations

import ctypes
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.workload


def test_built_directory_validates(models_dir: Path) -> None:
    from lamarr_job.manifest import required_files, validate_models_dir

    manifest = validate_models_dir(models_dir)
    assert sorted(manifest["models"]) == [
        "acceptance",
        "covariance",
        "efficiency",
        "pid",
        "resolution",
    ]
    for name in required_files():
        assert (models_dir / name).is_file()
    from lamarr_job.modelconfig import check_models

    config = check_models(models_dir)  # models.yaml (or, for an older build, the manifest)
    assert (config.pipeline, config.pv_smearing.condition) == ("demo", "synthetic")
    assert config.hashes() == {
        k: v for k, v in manifest["files"].items() if k.endswith((".so", ".db"))
    }


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: shutil.rmtree(d), "does not exist"),
        (lambda d: (d / "efficiency.so").unlink(), "lacks efficiency.so"),
        (lambda d: (d / "resolution.so").write_bytes(b"x"), "differs from the manifest"),
        (lambda d: (d / "manifest.json").write_text("{"), "unreadable manifest"),
    ],
)
def test_damaged_directory_is_rejected(
    tmp_path: Path, models_dir: Path, damage: object, message: str
) -> None:
    from lamarr_job.errors import ModelsError
    from lamarr_job.manifest import validate_models_dir

    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy)
    damage(copy)  # type: ignore[operator]
    with pytest.raises(ModelsError, match=message):
        validate_models_dir(copy)


def test_manifest_contract_mismatch_is_rejected(tmp_path: Path, models_dir: Path) -> None:
    from lamarr_job.errors import ModelsError
    from lamarr_job.manifest import validate_models_dir

    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["models"]["pid"]["inputs"] = ["log10_p"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelsError, match=r"models.pid.inputs"):
        validate_models_dir(copy)


def test_existing_output_directory_is_not_overwritten(models_dir: Path) -> None:
    from lamarr_job.build import build_models
    from lamarr_job.errors import LamarrError

    with pytest.raises(LamarrError, match="exists"):
        build_models(models_dir)


def test_compiled_classifier_follows_the_law(models_dir: Path) -> None:
    """The .so produced by scikinC and gcc, called directly like SQLamarr does."""
    from lamarr_job import law

    floats = ctypes.POINTER(ctypes.c_float)
    function = ctypes.CDLL(str(models_dir / "acceptance.so")).acceptance
    for eta in (1.6, 2.0, 3.0, 4.0, 4.9, 5.4):
        inputs = np.array([1.0, eta], dtype=np.float32)
        output = np.zeros(1, dtype=np.float32)
        function(output.ctypes.data_as(floats), inputs.ctypes.data_as(floats))
        assert abs(output[0] - law.acceptance(np.array([eta]))[0]) < 0.08, eta


def test_generated_sources_carry_no_date(models_dir: Path) -> None:
    for source in models_dir.glob("*.C"):
        assert "(date elided)" in source.read_text()
