"""The model configuration check: what fails at submit, with a message naming the fault."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from lamarr_testing import JOB_DIR
from lhcb_testing import LHCB_LIBRARY, LHCB_MODELS


@pytest.fixture
def lhcb_copy(tmp_path: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(LHCB_MODELS, target)
    return target


def _edit(directory: Path, change: dict) -> None:
    path = directory / "models.yaml"
    config = yaml.safe_load(path.read_text())
    for dotted, value in change.items():
        node = config
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    path.write_text(yaml.safe_dump(config))


def _check(directory: Path, arch: str | None = "x86_64") -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "lamarr_job", "check-models", str(directory)]
    if arch:
        argv += ["--arch", arch]
    return subprocess.run(argv, cwd=JOB_DIR, capture_output=True, text=True, check=False)


def test_lhcb_configuration_checks_out() -> None:
    from lamarr_job.elf import read_elf
    from lamarr_job.modelconfig import check_models

    config = check_models(LHCB_MODELS, "x86_64")
    assert config.pipeline == "lhcb"
    assert [m.noise for m in config.models.values()] == [0, 0, 128, 128]
    info = read_elf(LHCB_LIBRARY)
    assert (info.bits, info.machine) == (64, "x86_64")
    assert {"acceptance", "efficiency", "resolution", "covariance"} <= info.functions
    done = _check(LHCB_MODELS)
    assert done.returncode == 0 and "ok (lhcb-2016MU, lhcb pipeline)" in done.stdout


def test_check_imports_neither_sqlamarr_nor_numpy() -> None:
    code = (
        "import sys; from lamarr_job.modelconfig import check_models; "
        f"check_models({str(LHCB_MODELS)!r}, 'x86_64'); "
        "print(sorted(m for m in ('SQLamarr', 'numpy', 'tensorflow') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=JOB_DIR, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"models.resolution.function": "resolution_v2"}, "exports no function 'resolution_v2'"),
        ({"models.acceptance.sha256": "0" * 64}, "sha256 ffd4d22c62a68567... differs"),
        ({"models.efficiency.file": "absent.so"}, "absent.so: missing"),
        ({"models.acceptance.inputs": ["mc_x", "mc_pt"]}, "mc_pt not computed by the pipeline"),
        ({"models.efficiency.outputs": ["long"]}, "this pipeline reads"),
        ({"pipeline": "atlas"}, "pipeline: 'atlas' is not one of"),
        ({"pv_smearing.condition": "2016_pp_MagUpp"}, "no PV smearing condition '2016_pp_MagUpp'"),
    ],
)
def test_mismatched_configuration_fails_with_a_clear_error(
    lhcb_copy: Path, change: dict, message: str
) -> None:
    _edit(lhcb_copy, change)
    done = _check(lhcb_copy)
    assert done.returncode == 2
    assert message in done.stderr
    assert str(lhcb_copy) in done.stderr


def test_wrong_architecture_fails(lhcb_copy: Path) -> None:
    done = _check(lhcb_copy, arch="aarch64")
    assert done.returncode == 2
    assert "built for x86_64 (64-bit), the nodes run aarch64" in done.stderr


def test_library_of_another_machine_fails(lhcb_copy: Path) -> None:
    library = lhcb_copy / LHCB_LIBRARY.name
    data = bytearray(library.read_bytes())
    data[18:20] = (183).to_bytes(2, "little")  # e_machine: AArch64
    library.write_bytes(bytes(data))
    import hashlib

    digest = hashlib.sha256(bytes(data)).hexdigest()
    _edit(
        lhcb_copy,
        {
            f"models.{stage}.sha256": digest
            for stage in ("acceptance", "efficiency", "resolution", "covariance")
        },
    )
    done = _check(lhcb_copy)
    assert done.returncode == 2
    assert "built for aarch64 (64-bit), the nodes run x86_64" in done.stderr


def test_not_a_shared_object_fails(lhcb_copy: Path) -> None:
    import hashlib

    library = lhcb_copy / LHCB_LIBRARY.name
    library.write_bytes(b"#!/bin/sh\n")
    digest = hashlib.sha256(library.read_bytes()).hexdigest()
    _edit(
        lhcb_copy,
        {
            f"models.{stage}.sha256": digest
            for stage in ("acceptance", "efficiency", "resolution", "covariance")
        },
    )
    done = _check(lhcb_copy)
    assert done.returncode == 2
    assert "not a loadable shared object: not an ELF file" in done.stderr


def test_generate_checks_models_before_any_event(tmp_path: Path, lhcb_copy: Path) -> None:
    from lamarr_job.errors import ModelsError
    from lamarr_testing import run_task

    _edit(lhcb_copy, {"models.covariance.function": "covariances"})
    with pytest.raises(ModelsError, match="exports no function 'covariances'"):
        run_task(tmp_path / "out", lhcb_copy, run=1, events=1)
    assert not list((tmp_path / "out").glob("*.root"))


def test_generate_checks_the_pv_condition_before_any_event(tmp_path: Path) -> None:
    from lamarr_job.errors import ModelsError
    from lamarr_testing import run_task

    with pytest.raises(ModelsError, match="it has 2015_pp_MagDown, 2015_pp_MagUp, 2016_pp_"):
        run_task(tmp_path / "out", LHCB_MODELS, run=1, events=1, pv_condition="2016_MagUp")
    assert not list((tmp_path / "out").glob("*.root"))
