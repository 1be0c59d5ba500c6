"""Command line of the payload: ``python3 -m fastcalogan COMMAND`` (train, select, validate,
assemble, check, synth)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import PayloadError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastcalogan", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train (or resume) one task, then select, export, plot")
    t.add_argument("--spec", type=Path, required=True, help="task spec JSON (payload contract)")
    s = sub.add_parser("select", help="score every checkpoint of a finished task, export, plot")
    s.add_argument("--spec", type=Path, required=True, help="the spec the task was trained with")
    v = sub.add_parser(
        "validate", help="CaloChallenge-style metrics of each selected GAN on held-out showers"
    )
    v.add_argument(
        "--spec",
        type=Path,
        required=True,
        help="the spec the task was trained with, or a campaign validate step's spec "
        "(upstream.train: select the best checkpoint of that task first)",
    )
    a = sub.add_parser("assemble", help="a campaign's last step: every generator in one bundle")
    a.add_argument("--spec", type=Path, required=True, help="spec with upstream.validate tasks")
    c = sub.add_parser(
        "check", help="validate task specs as each task would at its start (no TensorFlow)"
    )
    c.add_argument("--specs", type=Path, required=True, help="JSON lines, one spec per task")
    g = sub.add_parser("synth", help="write a SYNTHETIC dataset in the FastCaloGAN CSV layout")
    g.add_argument("--out", type=Path, required=True, help="root of the CSV tree")
    g.add_argument("--particle", default="photon", help="photon, electron or pion")
    g.add_argument("--eta-slice", type=int, nargs="+", default=[4], help="slice indices 0..99")
    g.add_argument("--events", type=int, default=1000, help="showers per energy point")
    g.add_argument("--seed", type=int, default=1, help="random seed")
    g.add_argument("--energies", type=int, nargs="*", help="momentum exponents k (2**k MeV)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; payload errors become the contract's exit codes."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's INFO lines are noise
    try:
        if args.command == "check":
            return _check(args.specs)
        if args.command != "synth":  # the commands that load TensorFlow
            from .runtime import check

            check()
        if args.command == "train":
            from .spec import load_spec
            from .train import run

            return run(load_spec(args.spec))
        if args.command == "select":
            from .select import select_and_export
            from .spec import load_spec
            from .train import load_data, split_data

            cfg = load_spec(args.spec)
            for s, (train_set, held) in zip(cfg.eta_slices, split_data(cfg, load_data(cfg))):
                select_and_export(cfg, s, held, train_set)
            return 0
        if args.command == "validate":
            from .spec import load_spec
            from .validate import validate_task

            cfg = load_spec(args.spec)
            validate_task(cfg, select=cfg.train_dir is not None)
            return 0
        if args.command == "assemble":
            from .assemble import assemble

            assemble(args.spec)
            return 0
        from .layout import particle
        from .synthetic import write_dataset

        part = particle(args.particle)
        momenta = [2**k for k in args.energies] if args.energies else None
        paths = write_dataset(args.out, part, args.eta_slice, args.events, args.seed, momenta)
        print(f"wrote {len(paths)} SYNTHETIC files under {args.out}")
        return 0
    except PayloadError as exc:
        print(f"fastcalogan: error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code


def _check(specs: Path) -> int:
    """Each problem of the specs on one line of stderr (the last line is what ``fcgtainer
    submit`` shows): exit 2 if any, else 0."""
    from .spec import check_specs

    n, problems = check_specs(specs)
    for message, tasks in problems.items():
        print(
            f"{message} ({len(tasks)} of {n} tasks, the first {tasks[0]})",
            file=sys.stderr,
        )
    if problems:
        return 2
    print(f"fastcalogan: {n} task spec(s) valid")
    return 0
