"""The pipeline reproduces the known law its models were trained on.

Tolerances: every comparison allows 3 statistical standard deviations of the
measured quantity plus a stated model tolerance, which covers what the quick
training budget leaves on the table (steep turn-ons are smoothed by the
classifiers; the generators' widths are good to a few percent):

- acceptance and efficiency per bin: 3 sigma_stat + 0.05 absolute;
- relative momentum resolution per momentum bin: 3 sigma_stat + 8% relative;
- PV resolution per coordinate: 10% relative (triple-Gaussian tails);
- PID means per species: 3 sigma_stat + 0.6; reported momentum error: 8%.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lamarr_testing import read_trees, run_task

pytestmark = pytest.mark.workload

MODEL_TOL = 0.05
RES_TOL = 0.08


@pytest.fixture(scope="module")
def gun_run(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("gun")
    summary = run_task(out, models_dir, run=11, events=3000, batch_size=1000, gun_particles=10)
    return {"summary": summary, **read_trees(out / summary["ntuple"])}


def test_summary_counts(gun_run: dict) -> None:
    summary = gun_run["summary"]
    assert summary["events"] == 3000
    assert summary["charged_particles"] == 30000
    assert summary["primary_vertices"] == 3000
    assert summary["tracks"] == int(gun_run["MCTracks"]["reconstructed"].sum())


def test_acceptance_matches_law(gun_run: dict) -> None:
    from lamarr_job import law

    mc = gun_run["MCTracks"]
    for lo, hi in [(1.8, 1.95), (1.95, 2.05), (2.05, 2.3), (2.5, 4.5), (4.75, 4.95), (4.95, 5.2)]:
        sel = (mc["eta"] > lo) & (mc["eta"] < hi)
        observed = mc["accepted"][sel].mean()
        expected = law.acceptance(mc["eta"][sel]).mean()
        stat = np.sqrt(max(expected * (1 - expected), 1e-4) / sel.sum())
        assert abs(observed - expected) < 3 * stat + MODEL_TOL, (lo, hi, observed, expected)


def test_efficiency_matches_law(gun_run: dict) -> None:
    from lamarr_job import law

    mc = gun_run["MCTracks"]
    accepted = mc["accepted"] == 1
    p_gev = mc["p"] / 1000
    for lo, hi in [(2, 2.8), (2.8, 3.6), (3.6, 5), (5, 20), (20, 200)]:
        sel = accepted & (p_gev > lo) & (p_gev < hi)
        observed = mc["reconstructed"][sel].mean()
        expected = law.efficiency(p_gev[sel]).mean()
        stat = np.sqrt(max(expected * (1 - expected), 1e-4) / sel.sum())
        assert abs(observed - expected) < 3 * stat + MODEL_TOL, (lo, hi, observed, expected)


def test_efficiency_flags_follow_model_probabilities(gun_run: dict) -> None:
    """The random decision in SQL is unbiased: a purely statistical comparison."""
    mc = gun_run["MCTracks"]
    accepted = mc["accepted"] == 1
    expected = mc["efficiency"][accepted]
    observed = mc["reconstructed"][accepted].mean()
    stat = np.sqrt(np.sum(expected * (1 - expected))) / accepted.sum()
    assert abs(observed - expected.mean()) < 4 * stat


def test_momentum_resolution_matches_law(gun_run: dict) -> None:
    from lamarr_job import law

    mc, tracks = gun_run["MCTracks"], gun_run["Tracks"]
    true_p = mc["p"][tracks["mc_key"]]
    residual = tracks["p"] / true_p - 1
    p_gev = true_p / 1000
    for lo, hi in [(3, 10), (10, 40), (40, 100), (100, 200)]:
        sel = (p_gev > lo) & (p_gev < hi)
        observed = residual[sel].std()
        expected = np.sqrt(np.mean(law.sigma_p_rel(p_gev[sel]) ** 2))
        stat = 1 / np.sqrt(2 * sel.sum())
        assert abs(observed / expected - 1) < 3 * stat + RES_TOL, (lo, hi, observed, expected)
        assert abs(residual[sel].mean()) < 3 * expected / np.sqrt(sel.sum()) + 0.1 * expected


def test_reported_momentum_error_matches_law(gun_run: dict) -> None:
    from lamarr_job import law

    mc, tracks = gun_run["MCTracks"], gun_run["Tracks"]
    true_p = mc["p"][tracks["mc_key"]]
    ratio = (tracks["p_err"] / tracks["p"]) / law.sigma_p_rel(true_p / 1000)
    assert abs(np.median(ratio) - 1) < RES_TOL


def test_pv_resolution_matches_law(gun_run: dict) -> None:
    from lamarr_job import law

    pvs = gun_run["PVs"]
    for coord in "xyz":
        _, f1, f2, s1, s2, s3 = law.PV_SMEARING[coord]
        expected = np.sqrt(f1 * s1**2 + f2 * s2**2 + (1 - f1 - f2) * s3**2)
        observed = (pvs[coord] - pvs[f"mc_{coord}"]).std()
        assert abs(observed / expected - 1) < 0.10, (coord, observed, expected)


def test_pid_means_match_law(gun_run: dict) -> None:
    from lamarr_job import law

    mc, tracks = gun_run["MCTracks"], gun_run["Tracks"]
    apid = np.abs(mc["pid"][tracks["mc_key"]])
    p_gev = mc["p"][tracks["mc_key"]] / 1000
    for species in law.SPECIES:
        sel = (apid == species) & (p_gev > 10)
        width_k, width_mu = law.pid_widths(p_gev[sel])
        for column, mean, width in (
            ("dllk", law.DLLK_MEAN[species], width_k),
            ("dllmu", law.DLLMU_MEAN[species], width_mu),
        ):
            stat = np.sqrt(np.mean(width**2) / sel.sum())
            observed = tracks[column][sel].mean()
            assert abs(observed - mean) < 3 * stat + 0.6, (species, column, observed, mean)


def test_truth_links_point_at_the_right_particle(gun_run: dict) -> None:
    mc, tracks = gun_run["MCTracks"], gun_run["Tracks"]
    linked = tracks["mc_key"]
    assert np.all(mc["mc_key"][linked] == linked)
    assert np.all(mc["reconstructed"][linked] == 1)
    assert np.all(mc["evt"][linked] == tracks["evt"])
    assert np.all(mc["charge"][linked] == tracks["charge"])
    assert len(np.unique(linked)) == len(linked)
