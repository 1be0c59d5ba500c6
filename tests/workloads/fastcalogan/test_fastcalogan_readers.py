"""Readers of both input formats on small files, and each kind of bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastcalogan.errors import ConfigError, DataError
from fastcalogan.hparams import HParams
from fastcalogan.layout import csv_path, particle
from fastcalogan.readers import read_calochallenge, read_csv_slice
from fastcalogan.spec import config_from_params
from fastcalogan.synthetic import write_dataset

pytestmark = pytest.mark.workload
PHOTON = particle("photon")
MOMENTA = [256, 512]


@pytest.fixture
def csv_root(tmp_path: Path) -> Path:
    write_dataset(tmp_path, PHOTON, [4], n_events=6, seed=3, momenta=MOMENTA)
    return tmp_path


def test_csv_layout_and_content(csv_root: Path) -> None:
    path = csv_path(csv_root, PHOTON, 256, 4)
    assert path.relative_to(csv_root).as_posix() == (
        "pid22/eta_20_25/pid22_E256_eta_20_25_voxalisation.csv"
    )
    data = read_csv_slice(csv_root, PHOTON, 4, MOMENTA)
    assert data.momenta == MOMENTA
    assert [s.shape for s in data.showers] == [(6, 368), (6, 368)]
    x, y = data.training_arrays(HParams(label="maxE"))
    assert x.shape == (12, 368) and y.shape == (12, 1)
    np.testing.assert_allclose(y[:6], 256 / PHOTON.ekin_max, rtol=1e-6)
    np.testing.assert_allclose(x[:6] * 256, data.showers[0], rtol=1e-6)
    assert np.all(data.showers[1] >= 0)


def test_csv_with_phimod_and_eta_columns(csv_root: Path) -> None:
    """The ATLAS-internal layout (phiMod, eta, then the voxels) is detected per file."""
    plain = read_csv_slice(csv_root, PHOTON, 4, MOMENTA)
    path = csv_path(csv_root, PHOTON, 512, 4)
    rows = path.read_text().splitlines()
    path.write_text("\n".join(f"0.013,-0.2{i}," + row for i, row in enumerate(rows)) + "\n")
    mixed = read_csv_slice(csv_root, PHOTON, 4, MOMENTA)
    for a, b in zip(plain.showers, mixed.showers, strict=True):
        np.testing.assert_array_equal(a, b)


def test_csv_of_unknown_layout_lists_the_layouts_tried(csv_root: Path) -> None:
    path = csv_path(csv_root, PHOTON, 256, 4)
    path.write_text("\n" + ",".join(["1"] * 369) + "\n")
    with pytest.raises(DataError, match=r"voxalisation.csv: line 2 has 369 values") as info:
        read_csv_slice(csv_root, PHOTON, 4, MOMENTA)
    assert "tried: N voxels (368 values), phiMod, eta + N voxels (370 values)" in str(info.value)


def test_synthetic_is_reproducible(tmp_path: Path, csv_root: Path) -> None:
    write_dataset(tmp_path / "again", PHOTON, [4], n_events=6, seed=3, momenta=MOMENTA)
    a = read_csv_slice(csv_root, PHOTON, 4, MOMENTA)
    b = read_csv_slice(tmp_path / "again", PHOTON, 4, MOMENTA)
    np.testing.assert_array_equal(a.showers[0], b.showers[0])


def test_missing_energy_point_is_named(csv_root: Path) -> None:
    csv_path(csv_root, PHOTON, 512, 4).unlink()
    with pytest.raises(DataError, match=r"missing energy points E512\b"):
        read_csv_slice(csv_root, PHOTON, 4, MOMENTA)


def test_ragged_row_is_located(csv_root: Path) -> None:
    path = csv_path(csv_root, PHOTON, 256, 4)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"voxalisation.csv: line 3 has 367 values, expected 368"):
        read_csv_slice(csv_root, PHOTON, 4, MOMENTA)


def test_nan_is_located(csv_root: Path) -> None:
    path = csv_path(csv_root, PHOTON, 512, 4)
    lines = path.read_text().splitlines()
    values = lines[1].split(",")
    values[7] = "nan"
    lines[1] = ",".join(values)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"voxalisation.csv: line 2: voxel 7 is nan"):
        read_csv_slice(csv_root, PHOTON, 4, MOMENTA)


def test_text_and_empty_files(csv_root: Path) -> None:
    path = csv_path(csv_root, PHOTON, 256, 4)
    path.write_text(",".join(["0"] * 368) + "\n" + ",".join(["x"] * 368) + "\n")
    with pytest.raises(DataError, match=r"voxalisation\.csv: line 2: not a number: 'x'"):
        read_csv_slice(csv_root, PHOTON, 4, MOMENTA)
    path.write_text("")
    with pytest.raises(DataError, match="empty file"):
        read_csv_slice(csv_root, PHOTON, 4, MOMENTA)


def _h5(
    path: Path, energies: list[float], voxels: int = 368, nan: bool = False, drop: str | None = None
) -> Path:
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    showers = rng.exponential(1.0, (len(energies), voxels))
    if nan:
        showers[1, 5] = np.nan
    with h5py.File(path, "w") as f:
        if drop != "incident_energies":
            f["incident_energies"] = np.asarray(energies, np.float64).reshape(-1, 1)
        if drop != "showers":
            f["showers"] = showers
    return path


def test_calochallenge_groups_by_energy(tmp_path: Path) -> None:
    path = _h5(tmp_path / "ds1.hdf5", [256, 512, 256, 1024, 512])
    data = read_calochallenge(path, PHOTON)
    assert data.momenta == [256, 512, 1024]
    assert [len(s) for s in data.showers] == [2, 2, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"drop": "showers"}, "no dataset 'showers'"),
        ({"drop": "incident_energies"}, "no dataset 'incident_energies'"),
        ({"voxels": 533}, "533 voxels, a photon has 368"),
        ({"nan": True}, "non-finite"),
    ],
)
def test_calochallenge_bad_files(tmp_path: Path, kwargs: dict, message: str) -> None:
    path = _h5(tmp_path / "bad.hdf5", [256, 512], **kwargs)
    with pytest.raises(DataError, match=message):
        read_calochallenge(path, PHOTON)


def test_calochallenge_missing_energy_point(tmp_path: Path) -> None:
    path = _h5(tmp_path / "ds1.hdf5", [256, 512])
    with pytest.raises(DataError, match="missing energy points E1024"):
        read_calochallenge(path, PHOTON, [256, 512, 1024])
    (tmp_path / "junk.hdf5").write_text("not hdf5")
    with pytest.raises(DataError, match="not a readable HDF5"):
        read_calochallenge(tmp_path / "junk.hdf5", PHOTON)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"particle": "muon", "eta_slice": 1}, "unknown particle 'muon'"),
        ({"particle": "photon", "eta_slice": 100}, "eta_slice: 100 out of range"),
        ({"particle": "photon", "eta_slice": 1, "iterations": "many"}, "iterations: expected"),
        ({"particle": "photon", "eta_slice": 1, "learning_rate": 1}, "unknown learning_rate"),
        ({"particle": "photon", "eta_slice": 1, "activation": "tanh"}, "activation: 'tanh'"),
        ({"particle": "photon", "eta_slice": 1, "critic": "N,x"}, "critic: layer width 'x'"),
        ({"particle": "photon", "eta_slice": 1, "beta1": 2}, "beta1: 2 out of range"),
        ({"particle": "photon"}, "missing eta_slice"),
        ({"particle": "photon", "eta_slice": 1, "dataset": "csv"}, "needs a data path"),
        (
            {"particle": "photon", "eta_slice": 1, "precision": "float16"},
            "precision: 'float16'; valid: float32, bfloat16",
        ),
        (
            {"particle": "photon", "eta_slice": 1, "pack": 2, "pack_layout": "stacked"},
            "pack_layout: 'stacked'; valid: auto, batched, interleaved",
        ),
    ],
)
def test_bad_params_are_config_errors(tmp_path: Path, params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        config_from_params(params, tmp_path)
    assert info.value.exit_code == 2


def test_calochallenge_file_inside_the_data_input(tmp_path: Path) -> None:
    from fastcalogan.train import load_data

    _h5(tmp_path / "dataset_1_photons_1.hdf5", [256, 512, 512])
    params = {
        "particle": "photon",
        "eta_slice": 4,
        "dataset": "calochallenge",
        "data": "dataset_1_photons_1.hdf5",
        "energies": [8, 9],
    }
    cfg = config_from_params(params, tmp_path / "out", inputs={"data": str(tmp_path)})
    (data,) = load_data(cfg)
    assert data.momenta == [256, 512] and [len(s) for s in data.showers] == [1, 2]


def test_pack_layout_auto_follows_the_gpus(tmp_path: Path) -> None:
    params = {"particle": "pion", "eta_slice": 0, "pack": 4}
    assert config_from_params(params, tmp_path).pack_layout == "interleaved"
    assert config_from_params(params, tmp_path, gpus=1).pack_layout == "batched"
    forced = {**params, "pack_layout": "batched"}
    assert config_from_params(forced, tmp_path).pack_layout == "batched"
