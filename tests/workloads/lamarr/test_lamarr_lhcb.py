"""LHCb's tracking chain with the real 2016 MagUp parametrisation.

The pipeline must do what the parametrisation does when called directly (the
acceptance and track-category probabilities of the table in
``jobs/lamarr/data/lhcb-2016MU``'s source README, drawn at those rates), give
plausible resolutions, and the same output for the same run number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lamarr_testing import read_trees, run_task
from lhcb_testing import (
    LHCB_MODELS,
    TABLE_P_MEV,
    call_model,
    fixed_momentum_event,
    generator_inputs,
    write_hepmc2,
)

#: Pions per momentum point (events of 10): enough for ~1.5% binomial errors.
EVENTS_PER_POINT = 40
PIONS_PER_EVENT = 10
#: The table of the shared README (direct ctypes calls on 2026-12-04).
TABLE = {
    2000.0: (0.962, (0.479, 0.378, 0.131, 0.011)),
    5000.0: (0.982, (0.415, 0.462, 0.108, 0.015)),
    20000.0: (0.989, (0.372, 0.539, 0.072, 0.018)),
    100000.0: (0.979, (0.378, 0.560, 0.045, 0.018)),
}


@pytest.fixture(scope="session")
def table_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """pi+ from the origin at the table's momenta and slopes, through the LHCb chain."""
    base = tmp_path_factory.mktemp("lhcb-table")
    events = [
        fixed_momentum_event(EVENTS_PER_POINT * i + k, p, PIONS_PER_EVENT)
        for i, p in enumerate(TABLE_P_MEV)
        for k in range(EVENTS_PER_POINT)
    ]
    (base / "input").mkdir()
    write_hepmc2(base / "input" / "table.hepmc2", events)
    n_events = len(events)
    summary = run_task(
        base / "out",
        LHCB_MODELS,
        _inputs={"hepmc": str(base / "input")},
        run=7,
        events=n_events,
        batch_size=70,
        generator="hepmc",
    )
    return {"summary": summary, **read_trees(base / "out" / summary["ntuple"]), "base": base}


def test_every_event_and_particle_reaches_the_ntuple(table_run: dict[str, Any]) -> None:
    n = len(TABLE_P_MEV) * EVENTS_PER_POINT
    assert table_run["summary"]["events"] == n
    assert len(table_run["MCTracks"]["p"]) == n * PIONS_PER_EVENT
    assert len(table_run["PVs"]["z"]) == n
    assert table_run["provenance"]["models"]["pipeline"] == "lhcb"
    assert table_run["provenance"]["models"]["pv_condition"] == "2016_pp_MagUp"


def test_probabilities_are_the_direct_calls(table_run: dict[str, Any]) -> None:
    """Per particle, the pipeline's model outputs equal a ctypes call on inputs we compute."""
    mc = table_run["MCTracks"]
    inputs = generator_inputs(mc)
    acceptance = call_model("acceptance", inputs, 1)[:, 0]
    efficiency = call_model("efficiency", inputs, 4)
    np.testing.assert_allclose(mc["acceptance"], acceptance, atol=2e-4)
    pipeline = np.stack([mc[c] for c in ("not_recoed", "long", "upstream", "downstream")], axis=1)
    np.testing.assert_allclose(pipeline, efficiency, atol=2e-4)
    for p, (acc, eff) in TABLE.items():
        at = np.isclose(mc["p"], p, rtol=1e-5)
        assert at.sum() == EVENTS_PER_POINT * PIONS_PER_EVENT
        assert np.round(acceptance[at].mean(), 3) == pytest.approx(acc, abs=1.5e-3)
        np.testing.assert_allclose(efficiency[at].mean(axis=0), eff, atol=1.5e-3)


def _within(fraction: float, probability: float, n: int, sigmas: float = 4.0) -> bool:
    return (
        abs(fraction - probability) <= sigmas * np.sqrt(probability * (1 - probability) / n) + 1e-9
    )


def test_accepted_and_track_type_fractions_follow_the_probabilities(
    table_run: dict[str, Any],
) -> None:
    """Acceptance, then track type 0/3/4/5 drawn from not_recoed/long/upstream/downstream."""
    mc = table_run["MCTracks"]
    for p in TABLE_P_MEV:
        at = np.isclose(mc["p"], p, rtol=1e-5)
        kind = mc["track_type"][at]
        accepted = kind >= 0
        assert set(np.unique(kind)) <= {-1, 0, 3, 4, 5}
        assert _within(accepted.mean(), mc["acceptance"][at].mean(), at.sum()), p
        for code, column in ((0, "not_recoed"), (3, "long"), (4, "upstream"), (5, "downstream")):
            fraction = np.mean(kind[accepted] == code)
            assert _within(fraction, mc[column][at].mean(), accepted.sum()), (p, column, fraction)


def test_long_track_momentum_resolution_is_per_mille_to_percent(table_run: dict[str, Any]) -> None:
    tracks = table_run["Tracks"]
    long = tracks["track_type"] == 3
    for p in TABLE_P_MEV:
        at = long & np.isclose(tracks["mc_p"], p, rtol=1e-5)
        rel = tracks["dp"][at] / tracks["mc_p"][at]
        low, median, high = np.percentile(rel, [16, 50, 84])
        width = (high - low) / 2
        assert 1e-3 <= width <= 2e-2, (p, width)
        assert abs(median) < width, (p, median, width)
        np.testing.assert_allclose(
            tracks["p"][at], tracks["mc_p"][at] + tracks["dp"][at], rtol=1e-6
        )


def test_track_outputs_are_physical(table_run: dict[str, Any]) -> None:
    tracks = table_run["Tracks"]
    assert set(np.unique(tracks["track_type"])) <= {3, 4, 5}
    assert np.all((tracks["ghostProb"] >= 0) & (tracks["ghostProb"] <= 1))
    assert np.all(tracks["chi2PerDoF"] > 0)
    assert np.all(tracks["nDoF"] >= 1)
    for i in range(5):
        assert np.all(tracks[f"cov{i}{i}"] > 0)
        for j in range(i + 1, 5):
            corr = tracks[f"cov{i}{j}"] / np.sqrt(tracks[f"cov{i}{i}"] * tracks[f"cov{j}{j}"])
            # the model's correlations overshoot 1 for a few tracks (kept as it gives them)
            assert np.mean(np.abs(corr) > 1) < 0.01, (i, j)
            assert np.median(np.abs(corr)) < 1, (i, j)
    # long tracks are better measured than upstream ones at the same momentum
    assert np.median(tracks["nDoF"][tracks["track_type"] == 3]) > np.median(
        tracks["nDoF"][tracks["track_type"] == 4]
    )


def test_smeared_primary_vertices(table_run: dict[str, Any]) -> None:
    pvs = table_run["PVs"]
    dz = pvs["z"] - pvs["mc_z"]
    assert np.all(pvs["mc_z"] == 0)
    assert 0.005 < np.std(dz) < 0.5  # mm: the 2016 MagUp triple Gaussian


def test_same_run_number_gives_identical_output(table_run: dict[str, Any], tmp_path: Path) -> None:
    summary = run_task(
        tmp_path,
        LHCB_MODELS,
        _inputs={"hepmc": str(table_run["base"] / "input")},
        run=7,
        events=len(TABLE_P_MEV) * EVENTS_PER_POINT,
        batch_size=70,
        generator="hepmc",
    )
    again = read_trees(tmp_path / summary["ntuple"])
    for tree in ("MCTracks", "Tracks", "PVs"):
        assert again[tree].keys() == table_run[tree].keys()
        for column, values in table_run[tree].items():
            np.testing.assert_array_equal(again[tree][column], values, err_msg=f"{tree}.{column}")
