"""Validation figures of a Lamarr nTuple (one run or a merge): PNG plots and a JSON.

Figures (each in the JSON with its statistical uncertainty, each in a PNG):

- efficiency (a reconstructed track of any type per generated charged particle
  with ``pz > 1`` MeV) against p and against eta, per species;
- long-track momentum resolution against p: half the 16-84% interval of dp/p;
- ghost probability of the tracks, and the fractions of the track types;
- PV resolution: widths of the reconstructed minus the true PV position;
- invariant mass of the truth-matched signal candidates whose products are all
  long tracks, with a fit of a Gaussian on a flat background: peak and width,
  against the PDG mass and against the spread of (reconstructed - true) mass
  of the same candidates, which is what momentum smearing alone gives.

As a campaign step (``validate --spec``) it validates the ``merge`` task's nTuple and
also writes ``metrics.json``: the headline numbers, flat, for the run report.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .chain import PDG_MASSES_MEV, Decay, final_products
from .errors import ConfigError, InputError
from .merge import MERGED_NAME, METRICS_NAME, read_ntuple
from .output import summarise, write_json
from .spec import read_spec, spec_out_dir, upstream_dirs

Array = npt.NDArray[np.float64]
SPECIES = {11: "e", 13: "mu", 211: "pi", 321: "K", 2212: "p"}
P_EDGES_MEV = np.geomspace(2e3, 2e5, 11)
ETA_EDGES = np.linspace(1.5, 5.5, 9)
TRACK_TYPES = {3: "long", 4: "upstream", 5: "downstream"}
#: Names of signal particles in metrics.json keys (any other: ``pid<id>``).
PARTICLE_NAMES = {
    443: "jpsi",
    100443: "psi2S",
    553: "Upsilon1S",
    521: "Bplus",
    511: "B0",
    531: "Bs",
    541: "Bcplus",
    5122: "Lambdab",
    4122: "Lambdacplus",
    421: "D0",
    411: "Dplus",
    431: "Dsplus",
    413: "Dstarplus",
    333: "phi",
    313: "Kstar0",
    310: "KS",
    3122: "Lambda",
}


def _ratio(k: Array, n: Array) -> tuple[list[float | None], list[float | None]]:
    """Efficiencies and binomial errors per bin (None where the bin is empty)."""
    eff: list[float | None] = []
    err: list[float | None] = []
    for a, b in zip(k, n, strict=True):
        if b == 0:
            eff.append(None)
            err.append(None)
            continue
        e = a / b
        eff.append(float(e))
        err.append(float(math.sqrt(max(e * (1 - e), 1.0 / b) / b)))
    return eff, err


def efficiencies(mc: dict[str, Array]) -> dict[str, Any]:
    """Efficiency against p and eta per species."""
    reco = mc["track_type"] >= 3
    apid = np.abs(mc["pid"]).astype(int)
    out: dict[str, Any] = {"p_edges_MeV": P_EDGES_MEV.tolist(), "eta_edges": ETA_EDGES.tolist()}
    for pid, name in SPECIES.items():
        mine = apid == pid
        if not mine.any():
            continue
        entry: dict[str, Any] = {
            "particles": int(mine.sum()),
            "efficiency": float(reco[mine].mean()),
        }
        for var, edges in (("p", P_EDGES_MEV), ("eta", ETA_EDGES)):
            n, _ = np.histogram(mc[var][mine], edges)
            k, _ = np.histogram(mc[var][mine & reco], edges)
            entry[f"vs_{var}"], entry[f"vs_{var}_err"] = _ratio(k.astype(float), n.astype(float))
        out[name] = entry
    return out


def _half_width(values: Array) -> float:
    low, high = np.percentile(values, [16, 84])
    return float((high - low) / 2)


def resolution(tracks: dict[str, Array]) -> dict[str, Any]:
    """Long-track dp/p: half the 16-84% interval and median per p bin."""
    long = tracks["track_type"] == 3
    rel = tracks["dp"] / tracks["mc_p"]
    width: list[float | None] = []
    median: list[float | None] = []
    for lo, hi in itertools.pairwise(P_EDGES_MEV):
        sel = long & (tracks["mc_p"] >= lo) & (tracks["mc_p"] < hi)
        width.append(_half_width(rel[sel]) if sel.sum() >= 20 else None)
        median.append(float(np.median(rel[sel])) if sel.sum() >= 20 else None)
    every = long & (tracks["mc_p"] > 0)
    return {
        "p_edges_MeV": P_EDGES_MEV.tolist(),
        "dp_over_p_width": width,
        "dp_over_p_median": median,
        "dp_over_p_width_all": _half_width(rel[every]) if every.sum() >= 20 else None,
    }


def track_figures(tracks: dict[str, Array]) -> dict[str, Any]:
    """Ghost probability and track-type fractions."""
    n = len(tracks["track_type"])
    return {
        "tracks": n,
        "ghost_probability_mean": float(np.mean(tracks["ghostProb"])) if n else None,
        "ghost_probability_above_0.3": float(np.mean(tracks["ghostProb"] > 0.3)) if n else None,
        "track_type_fractions": {
            name: float(np.mean(tracks["track_type"] == code)) if n else None
            for code, name in TRACK_TYPES.items()
        },
    }


def pv_figures(pvs: dict[str, Array]) -> dict[str, Any]:
    """Widths (standard deviation and half 16-84%) of reconstructed - true PV, in mm."""
    out: dict[str, Any] = {"vertices": len(pvs["z"])}
    for axis in ("x", "y", "z"):
        residual = pvs[axis] - pvs[f"mc_{axis}"]
        out[f"d{axis}_std_mm"] = float(np.std(residual))
        out[f"d{axis}_half_width_mm"] = _half_width(residual)
    return out


def fit_peak(masses: Array, centre: float, half_window: float, bins: int = 60) -> dict[str, Any]:
    """Fit a Gaussian on a flat background to a binned mass distribution.

    Binned least squares with Poisson variances taken from the model (iterated
    Gauss-Newton); uncertainties from the inverse of J^T W J.
    """
    edges = np.linspace(centre - half_window, centre + half_window, bins + 1)
    counts, _ = np.histogram(masses, edges)
    x = (edges[:-1] + edges[1:]) / 2
    step = edges[1] - edges[0]
    inside = masses[(masses > edges[0]) & (masses < edges[-1])]
    sigma0 = max(_half_width(inside), step)
    params = np.array(
        [len(inside) * step / (sigma0 * math.sqrt(2 * math.pi)), np.median(inside), sigma0, 0.5]
    )

    def model(p: Array) -> tuple[Array, Array]:
        amp, mu, sig, bkg = p
        g = np.exp(-0.5 * ((x - mu) / sig) ** 2)
        jac = np.stack(
            [g, amp * g * (x - mu) / sig**2, amp * g * (x - mu) ** 2 / sig**3, np.ones_like(x)],
            axis=1,
        )
        return amp * g + bkg, jac

    for _ in range(100):
        pred, jac = model(params)
        weight = 1.0 / np.maximum(pred, 1.0)
        a = jac.T @ (jac * weight[:, None])
        b = jac.T @ ((counts - pred) * weight)
        step_p = np.linalg.solve(a, b)
        params = params + step_p
        params[2] = abs(params[2])
        params[3] = max(params[3], 0.0)
        if np.all(np.abs(step_p) < 1e-6 * (np.abs(params) + 1e-9)):
            break
    pred, jac = model(params)
    cov = np.linalg.inv(jac.T @ (jac / np.maximum(pred, 1.0)[:, None]))
    chi2 = float(np.sum((counts - pred) ** 2 / np.maximum(pred, 1.0)))
    return {
        "peak": float(params[1]),
        "peak_err": float(math.sqrt(cov[1, 1])),
        "width": float(params[2]),
        "width_err": float(math.sqrt(cov[2, 2])),
        "signal": float(params[0] * params[2] * math.sqrt(2 * math.pi) / step),
        "background_per_bin": float(params[3]),
        "bin_width": float(step),
        "chi2": chi2,
        "ndf": bins - 4,
        "window": [float(edges[0]), float(edges[-1])],
    }


def chain_of(provenance: dict[str, Any]) -> tuple[Decay, ...]:
    """The signal chain recorded in a run's (or the first merged run's) provenance."""
    record = provenance.get("merged_from", [{"provenance": provenance}])[0]["provenance"]
    generator = record.get("settings", {}).get("generator", {})
    return tuple(Decay(d[0], tuple(d[1:])) for d in generator.get("signal", []))


def core_fit(values: Array, centre: float, half_window: float) -> dict[str, Any]:
    """Fit the peak, then again within 2.5 fitted widths of it: the core of the peak.

    The tails of the resolution (upstream-like momenta, radiation) are not
    Gaussian; a fit over the whole window pulls the peak towards them.
    """
    fit = fit_peak(values, centre, half_window)
    for _ in range(3):
        fit = fit_peak(values, fit["peak"], 2.5 * fit["width"], bins=40)
    return fit


def mass_figures(candidates: dict[str, Array], chain: tuple[Decay, ...]) -> dict[str, Any]:
    """Fitted peak and width per signal particle, long-track candidates only.

    Beside the mass fit, the same fit of (reconstructed - true mass) of the same
    candidates: what the momentum smearing alone does to the peak (its shift and
    width), so that both comparisons are made against numbers with errors.
    """
    out: dict[str, Any] = {}
    for decay in chain:
        pid = abs(decay.mother)
        n_products = len(final_products(chain, pid))
        sel = (candidates["pid"] == pid) & (candidates["n_long"] >= n_products)
        if sel.sum() < 30:
            out[str(pid)] = {"candidates": int(sel.sum()), "fit": None}
            continue
        mass = candidates["mass"][sel]
        smear = mass - candidates["mass_true"][sel]
        true_median = float(np.median(candidates["mass_true"][sel]))
        pdg = PDG_MASSES_MEV.get(pid)  # None: compared with nothing, centred on the truth
        spread = _half_width(smear)
        fit = core_fit(mass, true_median if pdg is None else pdg, max(8 * spread, 40.0))
        smearing = core_fit(smear, float(np.median(smear)), max(8 * spread, 40.0))
        shift_err = math.hypot(fit["peak_err"], smearing["peak_err"])
        width_err = math.hypot(fit["width_err"], smearing["width_err"])
        out[str(pid)] = {
            "candidates": int(sel.sum()),
            "candidates_any_track_type": int(np.sum(candidates["pid"] == pid)),
            "pdg_mass": pdg,
            "fit": fit,
            "peak_minus_pdg": None if pdg is None else fit["peak"] - pdg,
            "pull_peak_vs_pdg": None if pdg is None else (fit["peak"] - pdg) / fit["peak_err"],
            "true_mass_median": true_median,
            "smearing_fit": smearing,
            "pull_peak_vs_pdg_plus_smearing_shift": None
            if pdg is None
            else (fit["peak"] - pdg - smearing["peak"]) / shift_err,
            "pull_width_vs_smearing_width": (fit["width"] - smearing["width"]) / width_err,
        }
    return out


def _plots(
    out_dir: Path,
    figures: dict[str, Any],
    trees: dict[str, dict[str, Array]],
    chain: tuple[Decay, ...],
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    written: list[str] = []
    eff = figures["efficiency"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in SPECIES.values():
        if name not in eff:
            continue
        for ax, var, edges in ((axes[0], "p", P_EDGES_MEV), (axes[1], "eta", ETA_EDGES)):
            centres = (edges[:-1] + edges[1:]) / 2
            vals = np.array([np.nan if v is None else v for v in eff[name][f"vs_{var}"]])
            errs = np.array([np.nan if v is None else v for v in eff[name][f"vs_{var}_err"]])
            ax.errorbar(
                centres,
                vals,
                yerr=errs,
                marker="o",
                ms=3,
                capsize=2,
                label=f"{name} ({eff[name]['particles']})",
            )
    axes[0].set_xscale("log")
    axes[0].set_xlabel("true p [MeV]")
    axes[1].set_xlabel("true pseudorapidity")
    for ax in axes:
        ax.set_ylabel("reconstructed track / charged particle")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Tracking efficiency (any track type)")
    fig.tight_layout()
    fig.savefig(out_dir / "efficiency.png", dpi=110)
    plt.close(fig)
    written.append("efficiency.png")

    tracks = trees["Tracks"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    res = figures["resolution"]
    centres = np.sqrt(P_EDGES_MEV[:-1] * P_EDGES_MEV[1:])
    width = np.array([np.nan if v is None else v for v in res["dp_over_p_width"]])
    axes[0].plot(centres, 100 * width, "o-")
    axes[0].set_xscale("log")
    axes[0].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0].set_xlabel("true p [MeV]")
    axes[0].set_ylabel("long tracks: dp/p half 16-84% width [%]")
    axes[0].set_ylim(bottom=0)
    axes[0].grid(alpha=0.3)
    for code, name in TRACK_TYPES.items():
        sel = tracks["track_type"] == code
        if sel.any():
            axes[1].hist(
                tracks["ghostProb"][sel],
                bins=np.linspace(0, 1, 41),
                histtype="step",
                label=name,
                density=True,
            )
    axes[1].set_yscale("log")
    axes[1].set_xlabel("ghost probability")
    axes[1].legend()
    fractions = figures["tracks"]["track_type_fractions"]
    axes[2].bar(list(fractions), [v or 0 for v in fractions.values()])
    axes[2].set_ylabel("fraction of tracks")
    fig.tight_layout()
    fig.savefig(out_dir / "tracks.png", dpi=110)
    plt.close(fig)
    written.append("tracks.png")

    pvs = trees["PVs"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, axis in zip(axes, ("x", "y", "z"), strict=True):
        residual = 1000 * (pvs[axis] - pvs[f"mc_{axis}"])
        ax.hist(
            residual, bins=60, range=tuple(np.percentile(residual, [0.5, 99.5])), histtype="step"
        )
        ax.set_xlabel(f"PV {axis} reco - true [um]")
        ax.set_title(f"half 16-84% width {1000 * figures['pv'][f'd{axis}_half_width_mm']:.1f} um")
    fig.tight_layout()
    fig.savefig(out_dir / "pv.png", dpi=110)
    plt.close(fig)
    written.append("pv.png")

    for pid, entry in figures["mass"].items():
        if entry.get("fit") is None:
            continue
        cand = trees["Candidates"]
        n_products = len(final_products(chain, int(pid)))
        sel = (cand["pid"] == int(pid)) & (cand["n_long"] >= n_products)
        fit = entry["fit"]
        centre = entry["true_mass_median"] if entry["pdg_mass"] is None else entry["pdg_mass"]
        lo, hi = centre - 8 * fit["width"], centre + 8 * fit["width"]
        edges = np.linspace(lo, hi, 81)
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        ax.hist(
            cand["mass"][sel],
            bins=edges.tolist(),
            histtype="step",
            color="k",
            label=f"long-track candidates ({entry['candidates']})",
        )
        x = np.linspace(fit["window"][0], fit["window"][1], 200)
        step = edges[1] - edges[0]
        amp = fit["signal"] * step / (fit["width"] * math.sqrt(2 * math.pi))
        ax.plot(
            x,
            amp * np.exp(-0.5 * ((x - fit["peak"]) / fit["width"]) ** 2)
            + fit["background_per_bin"] * step / fit["bin_width"],
            "r-",
            label=(
                f"fit: m = {fit['peak']:.1f} +- {fit['peak_err']:.1f} MeV\n"
                f"sigma = {fit['width']:.1f} +- {fit['width_err']:.1f} MeV"
            ),
        )
        reference = "PDG" if entry["pdg_mass"] is not None else "median true mass"
        ax.axvline(centre, color="b", ls="--", lw=1, label=f"{reference} {centre:.1f} MeV")
        ax.set_xlabel(f"reconstructed mass of PDG {pid} candidates [MeV]")
        ax.set_ylabel(f"candidates / {step:.1f} MeV")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / f"mass_{pid}.png", dpi=110)
        plt.close(fig)
        written.append(f"mass_{pid}.png")
    return written


def validate(ntuple: Path, out_dir: Path, plots: bool = True) -> dict[str, Any]:
    """Compute the figures of ``ntuple``, write ``validation.json`` and the PNGs."""
    trees, provenance = read_ntuple(ntuple)
    return validate_trees(ntuple, trees, provenance, out_dir, plots)


def validate_trees(
    ntuple: Path,
    trees: dict[str, dict[str, Array]],
    provenance: dict[str, Any],
    out_dir: Path,
    plots: bool = True,
) -> dict[str, Any]:
    """The figures of the trees read from ``ntuple``; writes ``validation.json`` and PNGs."""
    if "track_type" not in trees.get("MCTracks", {}):
        raise InputError(f"{ntuple}: not an nTuple of the LHCb pipeline (no MCTracks.track_type)")
    chain = chain_of(provenance)
    figures: dict[str, Any] = {
        "ntuple": str(ntuple),
        "runs": provenance.get("runs", [provenance.get("run")]),
        "efficiency": efficiencies(trees["MCTracks"]),
        "resolution": resolution(trees["Tracks"]),
        "tracks": track_figures(trees["Tracks"]),
        "pv": pv_figures(trees["PVs"]),
        "mass": mass_figures(trees["Candidates"], chain) if "Candidates" in trees and chain else {},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    if plots:
        figures["plots"] = _plots(out_dir, figures, trees, chain)
    write_json(out_dir / "validation.json", figures)
    return figures


def metrics(figures: dict[str, Any]) -> dict[str, float]:
    """The headline numbers of ``figures``, flat, for the run report (``metrics.json``).

    Counts, efficiencies per species with their binomial errors, long-track dp/p,
    ghost probability, track-type fractions, PV resolution (um) and, for each signal
    particle, the candidates and (with enough of them) the fitted mass peak and width
    with their errors (MeV). Figures that could not be computed are left out.
    """
    out: dict[str, Any] = {"runs": len([r for r in figures["runs"] if r is not None])}
    tracks = figures["tracks"]
    out["tracks"] = tracks["tracks"]
    out["ghost_probability_mean"] = tracks["ghost_probability_mean"]
    for name, fraction in tracks["track_type_fractions"].items():
        out[f"fraction_{name}"] = fraction
    out["long_dp_over_p_width"] = figures["resolution"]["dp_over_p_width_all"]
    efficiency = figures["efficiency"]
    for name in SPECIES.values():
        if name not in efficiency:
            continue
        n, e = efficiency[name]["particles"], efficiency[name]["efficiency"]
        out[f"particles_{name}"] = n
        out[f"efficiency_{name}"] = e
        out[f"efficiency_{name}_err"] = math.sqrt(e * (1 - e) / n)
    out["pv_vertices"] = figures["pv"]["vertices"]
    for axis in ("x", "y", "z"):
        out[f"pv_d{axis}_half_width_um"] = 1000 * figures["pv"][f"d{axis}_half_width_mm"]
    for pid, entry in figures["mass"].items():
        name = PARTICLE_NAMES.get(int(pid), f"pid{pid}")
        out[f"{name}_candidates"] = entry["candidates"]
        fit = entry["fit"]
        if fit is None:
            continue
        out[f"{name}_mass_peak_MeV"] = fit["peak"]
        out[f"{name}_mass_peak_err_MeV"] = fit["peak_err"]
        out[f"{name}_mass_width_MeV"] = fit["width"]
        out[f"{name}_mass_width_err_MeV"] = fit["width_err"]
        out[f"{name}_peak_minus_pdg_MeV"] = entry["peak_minus_pdg"]
        out[f"{name}_smearing_width_MeV"] = entry["smearing_fit"]["width"]
    return {
        k: v if isinstance(v, int) else float(v)
        for k, v in out.items()
        if v is not None and math.isfinite(v)
    }


def validate_task(spec_path: str | Path) -> dict[str, float]:
    """The campaign's validate step: figures, PNGs and ``metrics.json`` of the merge.

    Reads ``out_dir/lamarr_merged.root`` of the task named by ``upstream.merge`` in the
    spec at ``spec_path``; writes ``validation.json``, the PNGs and ``metrics.json`` to
    the task's ``out_dir``. An nTuple of the demo pipeline (no LHCb track types) gets
    its counts and efficiency in ``metrics.json`` only. Returns the metrics.
    """
    spec = read_spec(spec_path)
    dirs = upstream_dirs(spec, spec_path, "merge")
    if len(dirs) != 1:
        raise ConfigError(
            f"{spec_path}: upstream.merge: validate reads one merged nTuple, got {len(dirs)} "
            "merge tasks"
        )
    ntuple = dirs[0] / MERGED_NAME
    if not ntuple.is_file():
        raise InputError(f"{ntuple}: no merged nTuple (upstream.merge[0] in {spec_path})")
    out_dir = spec_out_dir(spec, spec_path)
    trees, provenance = read_ntuple(ntuple)
    if "track_type" in trees.get("MCTracks", {}):
        numbers = metrics(validate_trees(ntuple, trees, provenance, out_dir))
    else:  # the demo pipeline: its summary's figures only
        counts = summarise(trees, events=0)
        counts.pop("events")
        counts["runs"] = len(provenance.get("runs", [provenance.get("run")]))
        numbers = {k: v for k, v in counts.items() if isinstance(v, int | float)}
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "validation.json", {"ntuple": str(ntuple), **numbers})
    write_json(out_dir / METRICS_NAME, numbers)
    return numbers
