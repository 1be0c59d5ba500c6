"""A forced signal decay in Pythia, then the steps after generate: merge and validate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lamarr_testing import read_trees, run_task
from lhcb_testing import LHCB_MODELS

SIGNAL = "521 -> 443 321; 443 -> 13 -13"
JPSI_MEV = 3096.900


@pytest.fixture(scope="session")
def signal_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two small B+ -> J/psi(mu mu) K+ runs (forced decays, signal in LHCb)."""
    base = tmp_path_factory.mktemp("signal")
    summaries = [
        run_task(
            base / f"run{run}",
            LHCB_MODELS,
            run=run,
            events=6,
            batch_size=4,
            generator="pythia",
            pythia_process="bbbar",
            pythia_signal=SIGNAL,
        )
        for run in (11, 12)
    ]
    return {"base": base, "summaries": summaries}


def test_parse_chain_and_settings() -> None:
    from lamarr_job.errors import ConfigError
    from lamarr_job.signal import final_products, parse_chain, pythia_lines

    chain = parse_chain(SIGNAL)
    assert pythia_lines(chain) == [
        "521:onMode = off",
        "521:onIfMatch = 443 321",
        "443:onMode = off",
        "443:onIfMatch = 13 13",
    ]
    assert sorted(final_products(chain, 521)) == [13, 13, 321]
    for bad in ("521 => 443", "521 -> 443; 313 -> 321 -211", "B+ -> J/psi K+"):
        with pytest.raises(ConfigError, match="pythia_signal"):
            parse_chain(bad)


def test_every_event_holds_the_signal_in_lhcb(signal_runs: dict[str, Any]) -> None:
    summary = signal_runs["summaries"][0]
    trees = read_trees(signal_runs["base"] / "run11" / summary["ntuple"])
    mc = trees["MCTracks"]
    from_b = (np.abs(mc["mother_pid"]) == 521) | (np.abs(mc["gmother_pid"]) == 521)
    signal_events = np.unique(mc["event"][from_b & (mc["eta"] > 1.5) & (mc["eta"] < 5.4)])
    assert len(signal_events) == summary["events"] == 6
    assert trees["provenance"]["settings"]["generator"]["signal"] == [
        [521, 443, 321],
        [443, 13, -13],
    ]


def test_candidates_are_truth_matched(signal_runs: dict[str, Any]) -> None:
    import uproot

    found = 0
    for run, summary in zip((11, 12), signal_runs["summaries"], strict=True):
        with uproot.open(signal_runs["base"] / f"run{run}" / summary["ntuple"]) as root:
            cand = root["Candidates"].arrays(library="np")
        jpsi = cand["pid"] == 443
        found += int(jpsi.sum())
        # true mass of the two muons: the J/psi's, less what final-state radiation took
        assert np.all(cand["mass_true"][jpsi] < JPSI_MEV + 0.5)
        assert np.median(cand["mass_true"][jpsi]) == pytest.approx(JPSI_MEV, abs=2.0)
        long = jpsi & (cand["n_long"] == 2)
        assert np.all(np.abs(cand["mass"][long] - cand["mass_true"][long]) < 0.05 * JPSI_MEV)
        b = cand["pid"] == 521
        assert np.all(cand["mass_true"][b] < 5279.41 + 0.5)
    assert found >= 4


def test_merge_keeps_every_entry_once(signal_runs: dict[str, Any], tmp_path: Path) -> None:
    from lamarr_job.errors import InputError
    from lamarr_job.merge import merge

    out = tmp_path / "merged.root"
    summary = merge([signal_runs["base"]], out)
    assert summary["runs"] == [11, 12]
    merged = read_trees(out)
    parts = [
        read_trees(signal_runs["base"] / f"run{run}" / s["ntuple"])
        for run, s in zip((11, 12), signal_runs["summaries"], strict=True)
    ]
    for tree in ("MCTracks", "Tracks", "PVs"):
        assert len(merged[tree]["run"]) == sum(len(p[tree]["evt"]) for p in parts)
        assert summary["entries"][tree] == len(merged[tree]["run"])
        for run, part in zip((11, 12), parts, strict=True):
            mine = merged[tree]["run"] == run
            for column in ("evt", "pid" if tree != "PVs" else "z"):
                np.testing.assert_array_equal(merged[tree][column][mine], part[tree][column])
    # truth links still point at the particle of the same run and event
    tracks, mc = merged["Tracks"], merged["MCTracks"]
    assert np.array_equal(mc["run"][tracks["mc_key"]], tracks["run"])
    assert np.array_equal(mc["event"][tracks["mc_key"]], tracks["event"])
    index = json.loads(out.with_suffix(".json").read_text())
    assert [i["run"] for i in index["inputs"]] == [11, 12]
    assert all(len(i["sha256"]) == 64 for i in index["inputs"])
    provenance = merged["provenance"]["merged_from"]
    assert [p["provenance"]["run"] for p in provenance] == [11, 12]
    with pytest.raises(InputError, match="run 11 is also in"):
        merge(
            [
                signal_runs["base"] / "run11",
                signal_runs["base"] / "run11" / "lamarr_run000011.root",
            ],
            tmp_path / "x.root",
        )


def test_validate_writes_figures_and_plots(signal_runs: dict[str, Any], tmp_path: Path) -> None:
    from lamarr_job.validate import validate

    ntuple = signal_runs["base"] / "run11" / signal_runs["summaries"][0]["ntuple"]
    figures = validate(ntuple, tmp_path)
    saved = json.loads((tmp_path / "validation.json").read_text())
    assert saved["tracks"]["tracks"] == signal_runs["summaries"][0]["tracks"]
    assert set(saved["mass"]) == {"521", "443"}
    assert 0 < saved["efficiency"]["pi"]["efficiency"] < 1
    assert sum(saved["tracks"]["track_type_fractions"].values()) == pytest.approx(1.0)
    assert saved["pv"]["dz_std_mm"] > 0
    for name in figures["plots"]:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert {"efficiency.png", "tracks.png", "pv.png"} <= set(figures["plots"])


def test_mass_fit_recovers_a_known_peak() -> None:
    from lamarr_job.validate import fit_peak

    rng = np.random.default_rng(5)
    masses = np.r_[rng.normal(3096.9, 12.0, 2000), rng.uniform(2900, 3300, 400)]
    fit = fit_peak(masses, 3096.9, 120.0)
    assert abs(fit["peak"] - 3096.9) < 3 * fit["peak_err"]
    assert abs(fit["width"] - 12.0) < 3 * fit["width_err"]
    assert fit["peak_err"] == pytest.approx(12.0 / np.sqrt(2000), rel=0.3)
