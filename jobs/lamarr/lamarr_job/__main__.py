"""Command line: ``python3 -m lamarr_job COMMAND`` (generate, check, check-models, merge,
validate, validate-models, build-models)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from .errors import EXIT_CONFIG, EXIT_FAILURE, LamarrError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lamarr_job", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="run one task described by a spec file")
    gen.add_argument(
        "--spec",
        default=os.environ.get("FCGTAINER_SPEC"),
        help="spec.json (default: $FCGTAINER_SPEC)",
    )
    merge = sub.add_parser(
        "merge", help="merge runs' nTuples into one file (index and provenance kept)"
    )
    merge.add_argument("inputs", nargs="*", help="nTuples, or directories searched for them")
    merge.add_argument("--out", help="merged nTuple (an index .json beside it)")
    merge.add_argument(
        "--spec",
        help="campaign step: merge the upstream generate tasks' nTuples into out_dir "
        "(instead of INPUTS and --out)",
    )
    valid = sub.add_parser("validate", help="validation plots (PNG) and figures (JSON)")
    valid.add_argument("ntuple", nargs="?", help="a run's or a merged nTuple (LHCb pipeline)")
    valid.add_argument("--out", help="directory for validation.json and PNGs")
    valid.add_argument(
        "--spec",
        help="campaign step: validate the upstream merge task's nTuple into out_dir, "
        "metrics.json included (instead of NTUPLE and --out)",
    )
    build = sub.add_parser("build-models", help="train, transpile and compile the demo models")
    build.add_argument("--out", required=True, help="new directory for the model set")
    build.add_argument("--budget", default="quick", choices=("quick", "full"))
    build.add_argument("--seed", type=int, default=12345)
    check = sub.add_parser("validate-models", help="check a demo models directory")
    check.add_argument("directory")
    models = sub.add_parser(
        "check-models",
        help="check a models directory (models.yaml: files, sha256, ELF architecture, symbols)",
    )
    models.add_argument("directory")
    models.add_argument(
        "--arch", default=None, help="the nodes' architecture (default: this machine's)"
    )
    specs = sub.add_parser(
        "check",
        help="validate the generate specs of a campaign on the submit host (job.yaml's check)",
    )
    specs.add_argument("--specs", required=True, help="JSON lines, one task spec each")
    return parser


def _exit_on_signal(signum: int, _frame: object) -> None:
    """Turn SIGTERM/SIGUSR2 into SystemExit so ``finally`` blocks clean up.

    The run's work directory may sit in ``/dev/shm`` (node memory); without this
    an evicted task would leave it behind. 128 + signal: a failure the
    scheduler may retry (the payload does not checkpoint).
    """
    raise SystemExit(128 + signum)


def _check_forms(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``merge``/``validate``: either ``--spec`` or the inputs with ``--out``, not both."""
    given = args.inputs if args.command == "merge" else args.ntuple
    what = "INPUTS" if args.command == "merge" else "NTUPLE"
    if args.spec and (given or args.out):
        parser.error(f"{args.command}: give either --spec or {what} with --out, not both")
    if not args.spec and not (given and args.out):
        parser.error(f"{args.command}: give --spec SPEC, or {what} and --out")


def _check(specs: str) -> int:
    """Each problem of the specs on one line of stderr (the last line is what ``fcgtainer
    submit`` shows): exit 2 if any, else 0."""
    from pathlib import Path

    from .spec import check_specs

    n, problems = check_specs(Path(specs))
    for message, tasks in problems.items():
        print(f"{message} ({len(tasks)} of {n} tasks, the first {tasks[0]})", file=sys.stderr)
    if problems:
        return EXIT_CONFIG
    print(f"lamarr_job: {n} task spec(s) valid")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command; map errors to the payload contract's exit codes."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in ("merge", "validate"):
        _check_forms(parser, args)
    try:
        if args.command == "generate":
            if not args.spec:
                print("lamarr_job: --spec or $FCGTAINER_SPEC is required", file=sys.stderr)
                return EXIT_CONFIG
            from .run import generate
            from .spec import load_spec

            summary = generate(load_spec(args.spec))
            summary.pop("provenance", None)
            print(json.dumps(summary, sort_keys=True))
        elif args.command == "build-models":
            from .build import build_models

            manifest = build_models(args.out, budget=args.budget, seed=args.seed)
            print(json.dumps(manifest["files"], indent=2, sort_keys=True))
        elif args.command == "merge" and args.spec:
            from .merge import merge_task

            print(json.dumps(merge_task(args.spec)))
        elif args.command == "merge":
            from pathlib import Path

            from .merge import merge as merge_runs

            print(json.dumps(merge_runs([Path(p) for p in args.inputs], Path(args.out))))
        elif args.command == "validate" and args.spec:
            from .validate import validate_task

            print(json.dumps(validate_task(args.spec), sort_keys=True))
        elif args.command == "validate":
            from pathlib import Path

            from .validate import validate

            figures = validate(Path(args.ntuple), Path(args.out))
            print(json.dumps({"mass": figures["mass"], "plots": figures.get("plots")}))
        elif args.command == "check":
            return _check(args.specs)
        elif args.command == "check-models":
            from .modelconfig import check_models

            config = check_models(args.directory, args.arch)
            print(f"{args.directory}: ok ({config.name}, {config.pipeline} pipeline)")
        else:
            from .manifest import validate_models_dir

            validate_models_dir(args.directory)
            print(f"{args.directory}: ok")
    except LamarrError as exc:
        print(f"lamarr_job: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        # The wrong image or interpreter: retrying on the same node cannot help.
        print(
            f"lamarr_job: error: {exc}; install jobs/lamarr/requirements.txt "
            "(requirements-build.txt for build-models) in the job's environment",
            file=sys.stderr,
        )
        # a check on the submit host that cannot import is not a bad parameter
        return EXIT_FAILURE if args.command == "check" else EXIT_CONFIG
    return 0


if __name__ == "__main__":
    for _signum in (signal.SIGTERM, signal.SIGUSR2):
        signal.signal(_signum, _exit_on_signal)
    sys.exit(main())
