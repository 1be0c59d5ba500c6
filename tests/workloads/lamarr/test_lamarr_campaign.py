"""A forced signal decay in Pythia, then the steps after generate: merge and validate,
as functions and as the campaign steps of the shipped job.yaml (``--spec``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lamarr_testing import JOB_DIR, read_trees, run_task
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
    from lamarr_job.chain import final_products, parse_chain, pythia_lines
    from lamarr_job.errors import ConfigError

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


def test_a_decay_missing_from_pythias_table_is_added(tmp_path: Path) -> None:
    """J/psi -> p pbar (the LHCb validation's other channel) is in no Pythia table."""
    summary = run_task(
        tmp_path,
        LHCB_MODELS,
        run=13,
        events=3,
        batch_size=3,
        generator="pythia",
        pythia_process="bbbar",
        pythia_signal="521 -> 443 321; 443 -> 2212 -2212",
    )
    trees = read_trees(tmp_path / summary["ntuple"])
    lines = trees["provenance"]["settings"]["generator"]["lines"]
    assert "443:addChannel = 1 1.0 0 2212 -2212" in lines
    assert "521:addChannel" not in " ".join(lines)  # B+ -> J/psi K+ is Pythia's own
    mc = trees["MCTracks"]
    protons = (np.abs(mc["pid"]) == 2212) & (np.abs(mc["mother_pid"]) == 443)
    events, per_event = np.unique(mc["event"][protons], return_counts=True)
    assert len(events) == 3 and np.all(per_event % 2 == 0)  # a p pbar pair per J/psi


def test_decays_pythia_lacks_are_added_and_those_it_cannot_make_named() -> None:
    import pythia8mc
    from lamarr_job.chain import parse_chain
    from lamarr_job.errors import ConfigError
    from lamarr_job.generators import added_channels

    data = pythia8mc.Pythia("", False).particleData
    assert added_channels(data, parse_chain(SIGNAL)) == []
    assert added_channels(data, parse_chain("-521 -> 443 -321; 443 -> 2212 -2212")) == [
        "443:addChannel = 1 1.0 0 2212 -2212"
    ]
    # written for the antiparticle: Pythia's table holds the particle's (conjugate) channel
    assert added_channels(data, parse_chain("-521 -> 11 -11 11 -11 -211")) == [
        "521:addChannel = 1 1.0 0 -11 11 -11 11 211"
    ]
    with pytest.raises(ConfigError, match=r"does not decay 321 .* '321:mayDecay = on'"):
        added_channels(data, parse_chain("521 -> 443 321; 321 -> 13 14"))
    with pytest.raises(ConfigError, match="knows no particle 999999"):
        added_channels(data, parse_chain("999999 -> 13 -13"))


def test_a_chain_the_process_never_makes_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lamarr_job import generators
    from lamarr_job.errors import ConfigError

    monkeypatch.setattr(generators, "SIGNAL_SEARCH_LIMIT", 20)
    with pytest.raises(ConfigError, match=r"none of 20 minbias events held .* make 5122"):
        run_task(
            tmp_path,
            LHCB_MODELS,
            run=14,
            events=2,
            generator="pythia",
            pythia_process="minbias",
            pythia_signal="5122 -> 2212 -211",
        )


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


def test_a_particle_without_a_pdg_mass_is_compared_with_nothing() -> None:
    """Its peak is fitted and drawn beside the median true mass, never called 'PDG'."""
    from lamarr_job.chain import parse_chain
    from lamarr_job.validate import mass_figures

    rng = np.random.default_rng(3)
    true = rng.normal(4000.0, 0.5, 500)
    candidates = {
        "pid": np.full(500, 9000.0),
        "n_long": np.full(500, 2.0),
        "mass_true": true,
        "mass": true + rng.normal(0.0, 8.0, 500),
    }
    entry = mass_figures(candidates, parse_chain("9000 -> 211 -211"))["9000"]
    assert entry["pdg_mass"] is None and entry["peak_minus_pdg"] is None
    assert entry["pull_peak_vs_pdg_plus_smearing_shift"] is None
    assert abs(entry["fit"]["peak"] - 4000.0) < 4 * entry["fit"]["peak_err"]
    assert entry["true_mass_median"] == pytest.approx(4000.0, abs=0.2)


def _step_spec(path: Path, out_dir: Path, upstream: dict[str, list[Path]]) -> Path:
    """A campaign task's spec as fcgtainer writes it: out_dir and the upstream tasks."""
    spec = {
        "fcgtainer": 1,
        "job": "lamarr",
        "task": 9,
        "params": {},
        "out_dir": str(out_dir),
        "upstream": {
            step: [{"task": i, "out_dir": str(d)} for i, d in enumerate(dirs)]
            for step, dirs in upstream.items()
        },
    }
    path.write_text(json.dumps(spec))
    return path


@pytest.fixture(scope="module")
def campaign(signal_runs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``merge --spec`` of the two signal runs, then ``validate --spec`` of the merge."""
    from lamarr_job.__main__ import main

    base = tmp_path_factory.mktemp("campaign")
    (base / "merge").mkdir()
    (base / "validate").mkdir()
    runs = [signal_runs["base"] / "run11", signal_runs["base"] / "run12"]
    merge_spec = _step_spec(base / "merge.json", base / "merge", {"generate": runs})
    assert main(["merge", "--spec", str(merge_spec)]) == 0
    valid_spec = _step_spec(base / "validate.json", base / "validate", {"merge": [base / "merge"]})
    assert main(["validate", "--spec", str(valid_spec)]) == 0
    return base


@pytest.mark.workload
def test_merge_step_merges_every_generate_task(campaign: Path, signal_runs: dict[str, Any]) -> None:
    merged = read_trees(campaign / "merge" / "lamarr_merged.root")
    assert sorted(set(merged["MCTracks"]["run"])) == [11, 12]
    metrics = json.loads((campaign / "merge" / "metrics.json").read_text())
    tracks = sum(s["tracks"] for s in signal_runs["summaries"])
    assert metrics["runs"] == 2 and metrics["first_run"] == 11 and metrics["last_run"] == 12
    assert metrics["entries_Tracks"] == tracks == len(merged["Tracks"]["run"])
    assert metrics["entries_Candidates"] > 0
    assert all(isinstance(v, int | float) for v in metrics.values())


@pytest.mark.workload
def test_validate_step_writes_metrics_and_plots(campaign: Path) -> None:
    out = campaign / "validate"
    metrics = json.loads((out / "metrics.json").read_text())
    figures = json.loads((out / "validation.json").read_text())
    # a flat object of numbers, as the run report reads it
    assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in metrics.values())
    assert metrics["runs"] == 2
    assert metrics["tracks"] == figures["tracks"]["tracks"] > 0
    assert metrics["efficiency_mu"] == figures["efficiency"]["mu"]["efficiency"]
    assert 0 < metrics["efficiency_mu_err"] < 0.5
    long, upstream = metrics["fraction_long"], metrics["fraction_upstream"]
    assert long + upstream + metrics["fraction_downstream"] == pytest.approx(1.0)
    assert 0.001 < metrics["long_dp_over_p_width"] < 0.05
    assert metrics["pv_dz_half_width_um"] > metrics["pv_dx_half_width_um"] > 0
    # 12 events: too few candidates for a mass fit, so the counts alone
    assert metrics["jpsi_candidates"] == figures["mass"]["443"]["candidates"] > 0
    assert "Bplus_candidates" in metrics and "jpsi_mass_peak_MeV" not in metrics
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert {"efficiency.png", "tracks.png", "pv.png"} <= set(pngs)


def test_metrics_carry_a_fitted_peak() -> None:
    from lamarr_job.validate import metrics

    fit = {"peak": 3100.0, "peak_err": 0.3, "width": 10.1, "width_err": 0.6}
    figures = {
        "runs": [1, 2],
        "tracks": {
            "tracks": 10,
            "ghost_probability_mean": 0.1,
            "track_type_fractions": {"long": 0.8, "upstream": 0.2, "downstream": None},
        },
        "resolution": {"dp_over_p_width_all": None},
        "efficiency": {"mu": {"particles": 100, "efficiency": 0.75}},
        "pv": {"vertices": 2, **{f"d{a}_half_width_mm": 0.02 for a in "xyz"}},
        "mass": {
            "443": {
                "candidates": 2642,
                "fit": fit,
                "peak_minus_pdg": 3.1,
                "smearing_fit": {"width": 9.9},
            }
        },
    }
    got = metrics(figures)
    assert got["jpsi_mass_peak_MeV"] == 3100.0 and got["jpsi_mass_width_err_MeV"] == 0.6
    assert got["jpsi_candidates"] == 2642 and got["jpsi_smearing_width_MeV"] == 9.9
    assert got["efficiency_mu_err"] == pytest.approx((0.75 * 0.25 / 100) ** 0.5)
    assert "fraction_downstream" not in got and "long_dp_over_p_width" not in got


@pytest.mark.parametrize(
    ("command", "upstream", "message"),
    [
        ("merge", {}, "upstream.generate: missing"),
        ("merge", {"generate": []}, "upstream.generate: expected a non-empty list"),
        ("validate", {"generate": [{"task": 0}]}, "upstream.merge: missing"),
        ("validate", {"merge": [{"task": 4}]}, "upstream.merge[0].out_dir: missing"),
    ],
)
def test_a_bad_step_spec_names_the_file_and_the_key(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    upstream: dict[str, Any],
    message: str,
) -> None:
    from lamarr_job.__main__ import main

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"out_dir": str(tmp_path), "upstream": upstream}))
    assert main([command, "--spec", str(spec)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"lamarr_job: error: {spec}: {message}")


def test_a_missing_spec_or_upstream_output_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lamarr_job.__main__ import main

    assert main(["merge", "--spec", str(tmp_path / "nope.json")]) == 2
    assert f"{tmp_path / 'nope.json'}: cannot read spec" in capsys.readouterr().err
    spec = _step_spec(tmp_path / "spec.json", tmp_path, {"merge": [tmp_path / "empty"]})
    assert main(["validate", "--spec", str(spec)]) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'empty' / 'lamarr_merged.root'}: no merged nTuple" in error
    spec = _step_spec(tmp_path / "spec.json", tmp_path, {"generate": [tmp_path / "empty"]})
    assert main(["merge", "--spec", str(spec)]) == 2
    assert f"{tmp_path / 'empty'}: no such nTuple or directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["merge", "--spec", str(spec), "--out", "x.root"])
    assert exited.value.code == 2
    assert "either --spec or INPUTS with --out" in capsys.readouterr().err


@pytest.mark.unit
def test_the_shipped_job_plans_generate_merge_validate(tmp_path: Path) -> None:
    from fcgtainer.plan.tasks import task_spec
    from fcgtainer.runs.submit import plan_run

    site = tmp_path / "site.yaml"
    site.write_text(f"scheduler: local\nruntime: native\nruns_dir: {tmp_path / 'runs'}\n")
    plan = plan_run(str(JOB_DIR), str(site), ["runs=3..5"])
    steps = {s.name: s for s in plan.steps}
    assert list(steps) == ["generate", "merge", "validate"]
    assert [len(s.plan.tasks) for s in steps.values()] == [3, 1, 1]
    assert dict(steps["merge"].needs) == {"generate": "all"}
    assert dict(steps["validate"].needs) == {"merge": "all"}
    assert [t.values for t in steps["generate"].plan.tasks] == [{"run": r} for r in (3, 4, 5)]
    assert plan.inputs["models"] == str(JOB_DIR / "data" / "lhcb-2016MU")
    merge = steps["merge"].plan
    spec = task_spec(merge, merge.tasks[0])
    assert spec["upstream"] == {
        "generate": [{"task": i, "out_dir": str(plan.out_dir(i))} for i in range(3)]
    }
    assert merge.job.command[3:] == ("merge", "--spec", "{spec}")
    validate = steps["validate"].plan
    spec = task_spec(validate, validate.tasks[0])
    assert spec["upstream"] == {"merge": [{"task": 3, "out_dir": str(plan.out_dir(3))}]}
    assert validate.job.command[3:] == ("validate", "--spec", "{spec}")


def test_the_lhcb_models_are_the_default_and_pass_their_check() -> None:
    from lamarr_job.modelconfig import check_models

    config = check_models(JOB_DIR / "data" / "lhcb-2016MU")
    assert (config.name, config.pipeline) == ("lhcb-2016MU", "lhcb")


def test_validate_step_of_a_demo_ntuple_writes_its_counts(tmp_path: Path) -> None:
    from lamarr_job.output import write_ntuple
    from lamarr_job.validate import validate_task

    (tmp_path / "merge").mkdir()
    mc = {
        "p": np.ones(4),
        "accepted": np.array([1, 1, 1, 0]),
        "reconstructed": np.array([1, 1, 0, 0]),
    }
    trees = {"MCTracks": mc, "Tracks": {"p": np.ones(2)}, "PVs": {"z": np.zeros(1)}}
    write_ntuple(tmp_path / "merge" / "lamarr_merged.root", trees, {"runs": [1, 2]})
    spec = _step_spec(tmp_path / "spec.json", tmp_path, {"merge": [tmp_path / "merge"]})
    metrics = validate_task(spec)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert metrics["runs"] == 2 and metrics["tracks"] == 2
    assert metrics["efficiency"] == pytest.approx(2 / 3)
