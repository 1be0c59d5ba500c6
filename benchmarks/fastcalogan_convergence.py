"""Does FastCaloGAN learn? chi2/ndf of the total energy against training iterations.

One GAN (synthetic showers, |eta| slice 20, every energy point of the particle) is trained
with the payload's own trainer; at each listed iteration its generator is scored on an
independent synthetic sample of the same size (never seen in training) with the payload's
own figure of merit (``fastcalogan.evaluate``). Besides chi2/ndf, the mean and width of the
generated total over the reference's, per energy point, show progress where chi2/ndf
saturates. The floor is the same chi2/ndf between two independent synthetic samples.

A GAN's figure moves from checkpoint to checkpoint, so the payload keeps the best one. Each
row also gives what that selection delivers: checkpoints every ``--select-every``
iterations are scored on a third sample, and the best of them up to the row's iteration is
scored on the test sample (``selected_chi2_ndf``, ``selected_iteration``).

    python benchmarks/fastcalogan_convergence.py --particle photon --out photon.json \\
        [--iterations 0,500,1000,2000,5000,10000,20000] [--set activation=swish ...] \\
        [--energies 16,17,18,19,20,21,22]
    python benchmarks/fastcalogan_convergence.py --plot photon.json pion.json --png curve.png
    python benchmarks/fastcalogan_convergence.py --particle photon --scales [--wider 5]

Run with ``PYTHONPATH=jobs/fastcalogan`` (and ``nice`` on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_ITERATIONS = "0,500,1000,2000,5000,10000,20000"
#: training showers, the test sample (every figure), the selection sample (choosing the best
#: checkpoint, as the payload's selection does on its held-out showers)
SAMPLES = ("train", "test", "select")


def _value(text: str) -> Any:
    """``--set`` values as the job's YAML would give them (numbers, booleans, strings)."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train and score; return the record (also written to ``--out`` after every row)."""
    from fastcalogan import hparams, synthetic
    from fastcalogan.evaluate import chi2_uu, evaluate, histogram_range
    from fastcalogan.layout import particle
    from fastcalogan.readers import read_csv_slice
    from fastcalogan.step import WganTrainer
    from fastcalogan.train import configure_threads

    configure_threads()
    part = particle(args.particle)
    overrides = dict(kv.split("=", 1) for kv in args.set)
    hp = hparams.updated(hparams.defaults(part.name), {k: _value(v) for k, v in overrides.items()})
    work = Path(args.work)
    roots = {name: work / f"{name}-seed{args.seed + k}" for k, name in enumerate(SAMPLES)}
    momenta = [2**k for k in args.energies] if args.energies else None
    for k, root in enumerate(roots.values()):
        synthetic.write_dataset(
            root, part, [args.eta_slice], args.events, args.seed + k, momenta=momenta
        )
    train_set, test_set, select_set = (
        read_csv_slice(roots[name], part, args.eta_slice, momenta) for name in SAMPLES
    )
    # The floor: the same statistic between two independent synthetic samples.
    floor_chi2 = floor_ndf = 0.0
    for a, b in zip(train_set.showers, test_set.showers, strict=True):
        ta, tb = a.sum(axis=1, dtype=np.float64), b.sum(axis=1, dtype=np.float64)
        edges = np.linspace(*histogram_range(tb), 31)
        inner = (edges[0] + edges[1]) / 2, (edges[-2] + edges[-1]) / 2
        c, d = chi2_uu(
            np.histogram(np.clip(tb, *inner), edges)[0],
            np.histogram(np.clip(ta, *inner), edges)[0],
        )
        floor_chi2, floor_ndf = floor_chi2 + c, floor_ndf + d
    trainer = WganTrainer([train_set.training_arrays(hp)], [args.seed * 1000 + 7], hp=hp)
    points = sorted({int(x) for x in args.iterations.split(",")})
    rows: list[dict[str, Any]] = []
    record = {
        "particle": part.name,
        "eta_slice": args.eta_slice,
        "events_per_energy": args.events,
        "momenta": train_set.momenta,
        "hparams": hp.as_json(),
        "floor_chi2_ndf": floor_chi2 / floor_ndf,
        "rows": rows,
    }
    done, t0 = 0, time.perf_counter()
    best: tuple[float, int, Any] = (float("inf"), 0, None)
    for it in points:
        # the payload's selection: a checkpoint every --select-every iterations, scored on
        # the selection sample; the best so far is then scored on the test sample
        while done < it:
            step = min(it - done, args.select_every - done % args.select_every)
            trainer.train(step)
            done += step
            if done % args.select_every == 0 or done == it:
                params = trainer.generator_parameters()
                score = evaluate(params, hp, select_set, args.events).chi2_ndf
                if score < best[0]:
                    best = (score, done, params)
        params = trainer.generator_parameters()
        if it == 0:
            best = (evaluate(params, hp, select_set, args.events).chi2_ndf, 0, params)
        chosen = evaluate(best[2], hp, test_set, args.events)
        ev = evaluate(params, hp, test_set, args.events)
        row = {
            "selected_chi2_ndf": chosen.chi2_ndf,
            "selected_iteration": best[1],
            "iteration": it,
            "chi2_ndf": ev.chi2_ndf,
            "seconds": time.perf_counter() - t0,
            "mean_ratio": [p.gan_mean / p.ref_mean for p in ev.points],
            "width_ratio": [p.gan_std / max(p.ref_std, 1e-12) for p in ev.points],
            "chi2_ndf_per_point": [p.chi2 / max(p.ndf, 1) for p in ev.points],
            "ref_width_per_mean": [p.ref_std / max(p.ref_mean, 1e-12) for p in ev.points],
        }
        rows.append(row)
        print(
            f"{part.name} it {it}: chi2/ndf {ev.chi2_ndf:.2f}  selected {chosen.chi2_ndf:.2f} "
            f"(it {best[1]})  mean/ref "
            f"{min(row['mean_ratio']):.3f}..{max(row['mean_ratio']):.3f}  width/ref "
            f"{min(row['width_ratio']):.2f}..{max(row['width_ratio']):.2f}  "
            f"({row['seconds']:.0f} s)",
            flush=True,
        )
        if args.out:  # a long run is readable while it goes on
            args.out.write_text(json.dumps(record, indent=1))
    return record


def scales(args: argparse.Namespace) -> list[dict[str, float]]:
    """What a too-wide total is worth to the critic, against the shower shapes, per point.

    With voxels over Ekin (``normE``) the showers spread along the unit vector of equal
    voxels by the total's spread over sqrt(N). A generated total ``--wider`` times too wide
    is worth (wider - 1) * that * sqrt(2/pi) to a critic of slope one along it (the earth
    mover's distance between the two totals, so projected); the shapes vary by the norm of
    the voxels' own spreads.
    """
    from fastcalogan import synthetic
    from fastcalogan.layout import particle
    from fastcalogan.readers import read_csv_slice

    part = particle(args.particle)
    root = Path(args.work) / f"train-seed{args.seed}"
    synthetic.write_dataset(root, part, [args.eta_slice], args.events, args.seed)
    showers = read_csv_slice(root, part, args.eta_slice)
    out = []
    for momentum, raw in zip(showers.momenta, showers.showers, strict=True):
        x = raw.astype(np.float64) / part.ekin(momentum)
        total = x.sum(axis=1)
        along = total.std() / np.sqrt(x.shape[1])
        row = {
            "momentum_mev": momentum,
            "voxels": x.shape[1],
            "total": float(total.mean()),
            "total_spread": float(total.std() / total.mean()),
            "along_total": float(along),
            "too_wide_worth": float((args.wider - 1) * along * np.sqrt(2 / np.pi)),
            "shapes": float(np.linalg.norm(x.std(axis=0))),
        }
        out.append(row)
        print(
            f"{momentum:>8} MeV  total {row['total']:.3f} +- {100 * row['total_spread']:.2f}%  "
            f"along the total {along:.1e}  {args.wider:g}x too wide: "
            f"{row['too_wide_worth']:.1e}  shapes {row['shapes']:.1e} "
            f"({row['shapes'] / row['too_wide_worth']:.0f}x)"
        )
    return out


def plot(paths: list[Path], png: Path) -> None:
    """chi2/ndf against iterations, one curve per record, floors dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for path, colour in zip(paths, ("#1f77b4", "#d62728", "#2ca02c", "#9467bd"), strict=False):
        rec = json.loads(path.read_text())
        its = [max(r["iteration"], 1) for r in rec["rows"]]
        hp = rec["hparams"]
        norm = ", batch norm" if hp.get("batch_norm") else ""
        label = f"{rec['particle']} ({hp['activation']}{norm}, {hp['label']})"
        ax.plot(its, [r["chi2_ndf"] for r in rec["rows"]], "o-", color=colour, label=label)
        chosen = [r for r in rec["rows"] if "selected_chi2_ndf" in r]
        if chosen:
            ax.plot(
                [max(r["iteration"], 1) for r in chosen],
                [r["selected_chi2_ndf"] for r in chosen],
                "s:",
                color=colour,
                label="best checkpoint so far",
            )
        ax.axhline(rec["floor_chi2_ndf"], ls="--", color=colour, lw=1, label="floor (2 samples)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("iteration (0 drawn at 1)")
    ax.set_ylabel("chi2/ndf of the total energy")
    ax.set_title("FastCaloGAN on SYNTHETIC showers, held-out sample")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=90)


def main(argv: list[str] | None = None) -> int:
    """Command line: train and score, or plot records."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particle", default="photon")
    ap.add_argument("--eta-slice", type=int, default=20)
    ap.add_argument("--events", type=int, default=1000, help="showers per energy point")
    ap.add_argument(
        "--energies",
        type=lambda text: [int(k) for k in text.split(",")],
        help="momentum exponents k (p = 2**k MeV) of one GAN, as the job's `energies` "
        "(default: every energy point of the particle)",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--iterations", default=DEFAULT_ITERATIONS)
    ap.add_argument("--set", action="append", default=[], help="hyperparameter name=value")
    ap.add_argument("--select-every", type=int, default=250, help="iterations between checkpoints")
    ap.add_argument("--work", default="/tmp/fastcalogan-convergence")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--plot", type=Path, nargs="*")
    ap.add_argument("--png", type=Path, default=Path("fastcalogan_convergence.png"))
    ap.add_argument(
        "--scales", action="store_true", help="print what a too-wide total is worth to the critic"
    )
    ap.add_argument("--wider", type=float, default=5.0, help="with --scales: how much too wide")
    args = ap.parse_args(argv)
    if args.scales:
        scales(args)
        return 0
    if args.plot:
        plot(args.plot, args.png)
        return 0
    record = run(args)
    if not args.out:
        sys.stdout.write(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
