"""A BoloGAN-style binning.xml: voxel layouts, hyperparameters, new particles, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastcalogan.binning import read_binning
from fastcalogan.errors import ConfigError, DataError
from fastcalogan.layout import particle
from fastcalogan.spec import config_from_params

pytestmark = pytest.mark.workload

BINNING = """<Bins>
  <Particle pid="22" latentDim="40" learningRate="2e-4">
    <Bin etaMin="0" etaMax="130" regionId="0" lambda="5">
      <Layer id="0" r_edges="0,5,10,30,50,100,200,400,600" n_bin_alpha="1"/>
      <Layer id="1" r_edges="0,2,4,6,8,10,12,15,20,30,40,50,70,90,120,150,200" n_bin_alpha="10"/>
      <Layer id="2" r_edges="0,2,5,10,15,20,25,30,40,50,60,80,100,130,160,200,250,300,350,400"
             n_bin_alpha="10"/>
      <Layer id="3" r_edges="0,50,100,200,400,600" n_bin_alpha="1"/>
      <Layer id="4" r_edges="0" n_bin_alpha="1"/>
      <Layer id="12" r_edges="0,100,200,400,1000,2000" n_bin_alpha="1"/>
    </Bin>
    <Bin etaMin="130" etaMax="500" regionId="1">
      <Layer id="0" r_edges="0,5,10" n_bin_alpha="1"/>
    </Bin>
    <EnergyRanges>
      <Range name="High12" useBatchNormalisation="True" activationFunction="swish"
             label_definition="MaxE"/>
    </EnergyRanges>
  </Particle>
  <Particle pid="2212" name="proton" mass="938.272" kMin="10" gdratio="3">
    <Bin etaMin="0" etaMax="500" regionId="0">
      <Layer id="0" r_edges="0,5,10,30" n_bin_alpha="1"/>
      <Layer id="1" r_edges="0,2,4" n_bin_alpha="4"/>
    </Bin>
  </Particle>
</Bins>
"""


@pytest.fixture
def xml(tmp_path: Path) -> Path:
    path = tmp_path / "binning.xml"
    path.write_text(BINNING)
    return path


def test_layouts_and_hyperparameters_per_region_and_range(xml: Path) -> None:
    table = read_binning(xml)
    photon = table.particle("photon", 4)
    assert photon.layers == particle("photon").layers and photon.n_voxels == 368
    assert table.particle("photon", 30).n_voxels == 2  # |eta| 1.50-1.55: region 1
    assert table.hparams("photon", 4, None) == {
        "latent_dim": 40,
        "lr_generator": 2e-4,
        "lr_critic": 2e-4,
        "gp_lambda": 5.0,
    }
    high = table.hparams("photon", 4, "High12")
    assert high["batch_norm"] is True and high["activation"] == "swish"
    assert high["label"] == "maxE"


def test_a_particle_from_the_file_trains_with_its_hyperparameters(
    xml: Path, tmp_path: Path
) -> None:
    """Protons are not in the code: name, mass, energies and layout come from the file;
    hyperparameters: file first, then ``--set``."""
    params = {"particle": "proton", "eta_slice": 0, "binning": str(xml), "critic_steps": 2}
    cfg = config_from_params(params, tmp_path / "out")
    assert cfg.particle.pid == 2212 and cfg.particle.n_voxels == 3 + 8
    assert cfg.particle.mass == 938.272 and cfg.momenta[0] == 2**10
    assert cfg.hp.critic_steps == 2
    cfg = config_from_params({**params, "critic_steps": 3, "batch_size": 64}, tmp_path / "o")
    assert (cfg.hp.critic_steps, cfg.hp.batch_size) == (3, 64)
    photon = {"particle": "photon", "eta_slice": 4, "binning": str(xml)}
    assert config_from_params(photon, tmp_path / "p").hp.latent_dim == 40
    ranged = {**photon, "energy_range": "High12"}
    assert config_from_params(ranged, tmp_path / "q").hp.activation == "swish"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('regionId="0" lambda', "regionId=0 lambda"), r"line 3: not well-formed"),
        (('n_bin_alpha="10"/>', 'n_bin_alpha="ten"/>'), r"line 5: n_bin_alpha='ten'"),
        (('r_edges="0,5,10,30"', 'r_edges="0,5,x"'), r"line 22: r_edges='0,5,x' are not numbers"),
        ((' mass="938.272"', ""), r"line 20: particle proton \(pid 2212\) needs mass="),
        (('r_edges="0,2,4"', 'r_edges="0,4,2"'), r"line 23: .* do not increase"),
    ],
)
def test_bad_binning_is_named_by_file_and_line(
    xml: Path, edit: tuple[str, str], message: str
) -> None:
    old, new = edit
    assert old in BINNING
    xml.write_text(BINNING.replace(old, new, 1))
    with pytest.raises(DataError, match=message) as info:
        read_binning(xml)
    assert str(info.value).startswith(f"{xml}: ")


def test_unknown_particle_region_and_range(xml: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no particle 'kaon' .has photon, proton"):
        config_from_params(
            {"particle": "kaon", "eta_slice": 0, "binning": str(xml)}, tmp_path / "a"
        )
    with pytest.raises(ConfigError, match=r"no energy range 'Low' .has High12"):
        config_from_params(
            {"particle": "photon", "eta_slice": 0, "binning": str(xml), "energy_range": "Low"},
            tmp_path / "b",
        )
    with pytest.raises(ConfigError, match="span regions"):
        config_from_params(
            {"particle": "photon", "eta_slice": 25, "pack": 2, "binning": str(xml)},
            tmp_path / "c",
        )
