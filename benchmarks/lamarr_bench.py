"""Lamarr payload throughput and driver overhead, side by side in one run.

Measures, on one core (SQLamarr and Pythia are single-threaded):

- particle gun + full pipeline: events/s (generation, HepMC writing, SQLamarr
  pipeline, reading back, nTuple writing);
- Pythia 8 minimum bias + full pipeline: the same, with the split between
  Pythia, the HepMC conversion/writing and the pipeline;
- driver overhead: our ``LamarrPipeline`` (load, execute, event-count check,
  reading the persisted tables, cleaning, nTuple writing) against the bare
  SQLamarr pipeline (load, the same algorithms, clean) on the same HepMC files,
  alternating the two, median of ``--repeat`` rounds; and against the bare
  pipeline plus the plain read-out any SQLamarr user needs (``SELECT *`` of the
  persisted tables), which isolates the driver's own bookkeeping and nTuple.

- the same for LHCb's tracking chain with the real 2016 MagUp parametrisation
  (``jobs/lamarr/data/lhcb-2016MU``): our driver against SQLamarr's reference
  chain alone (the algorithms of its ``src/main.cpp``, nothing persisted or read
  beyond what it persists), on particle-gun and Pythia minimum-bias events.

Usage::

    PYTHONPATH=jobs/lamarr python benchmarks/lamarr_bench.py --models DIR [--json out.json]
    PYTHONPATH=jobs/lamarr python benchmarks/lamarr_bench.py --lhcb-only [--json out.json]

Without ``--models`` (and without ``--lhcb-only``) a quick demo model set is built
first (about a minute).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "jobs" / "lamarr"))

from lamarr_job.generators import (
    GunSettings,
    PythiaSettings,
    gun_events,
    pythia_events,
    start_pythia,
    write_batches,
)
from lamarr_job.lhcb import LhcbPipeline, bare_lhcb_pipeline
from lamarr_job.modelconfig import ModelConfig, check_models
from lamarr_job.output import write_ntuple
from lamarr_job.pipeline import EventStore, LamarrPipeline, bare_pipeline

LHCB_MODELS = Path(__file__).resolve().parents[1] / "jobs" / "lamarr" / "data" / "lhcb-2016MU"
LHCB_CONDITION = "2016_pp_MagUp"

PUBLISHED = {
    "Geant4 detailed": "~2500 HS06.s/event",
    "Pythia8 + Lamarr": "~500 HS06.s/event (generation dominates)",
    "particle gun + Lamarr": "~1 HS06.s/event",
}


class Clock:
    """Accumulate wall and CPU time of a code section."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def timed(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` and add its wall and CPU time."""
        w, c = time.perf_counter(), time.process_time()
        result = fn()
        self.wall += time.perf_counter() - w
        self.cpu += time.process_time() - c
        return result


def _pythia(settings: PythiaSettings, n_events: int) -> Iterator[Any]:
    """Pythia's events, initialised when the first is asked for (as a task's run does)."""
    pythia, _ = start_pythia(settings, seed=1)
    yield from pythia_events(pythia, settings, n_events)


def _timed_events(events: Iterator[Any], clock: Clock, first: Clock) -> Iterator[Any]:
    """Time the generator; the first event (which includes initialisation) apart."""
    current = first
    while True:
        try:
            yield current.timed(lambda: next(events))
        except StopIteration:
            return
        current = clock


def full_chain(
    kind: str, n_events: int, batch_size: int, models: Path, work: Path
) -> dict[str, Any]:
    """Generation + HepMC + pipeline + nTuple, timed per stage."""
    gen_clock, init_clock, write_clock, pipe_clock = Clock(), Clock(), Clock(), Clock()
    if kind == "gun":
        events = gun_events(GunSettings(), n_events, seed=1)
    else:
        settings = PythiaSettings(keep_partons=kind == "pythia-with-partons")
        events = _pythia(settings, n_events)
    store = EventStore(work / f"{kind}.db", seed=1)
    pipeline = LamarrPipeline(store, models, "synthetic")
    batches = write_batches(
        _timed_events(events, gen_clock, init_clock), n_events, batch_size, work / f"{kind}-hepmc"
    )
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    files: list[Path] = []
    while True:
        try:
            path, count = write_clock.timed(lambda: next(batches))
        except StopIteration:
            break
        files.append(path)
        pipe_clock.timed(functools.partial(pipeline.process, path, 0, len(files), count))
    trees = pipe_clock.timed(pipeline.results)
    pipe_clock.timed(lambda: write_ntuple(work / f"{kind}.root", trees, {"bench": kind}))
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    pipeline.close()
    # write_clock includes the time spent pulling events from the generator.
    write_clock.wall -= gen_clock.wall + init_clock.wall
    write_clock.cpu -= gen_clock.cpu + init_clock.cpu
    cpu -= init_clock.cpu
    particles = len(trees["MCTracks"]["p"])
    return {
        "events": n_events,
        "first_event_with_initialisation_s": round(init_clock.cpu, 3),
        "charged_particles_per_event": particles / n_events,
        "tracks_per_event": len(trees["Tracks"]["p"]) / n_events,
        "events_per_s_per_core": (n_events - 1) / cpu,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "ms_per_event": {
            "generator_and_genevent_conversion": 1e3 * gen_clock.cpu / n_events,
            "hepmc2_ascii_write": 1e3 * write_clock.cpu / n_events,
            "lamarr_pipeline": 1e3 * pipe_clock.cpu / n_events,
        },
        "files": files,
    }


def _plain_readout(store: EventStore) -> None:
    """What any SQLamarr user must do to get the results: fetch the persisted tables."""
    with store.reader() as conn:
        for table in ("MCTracks", "Tracks", "Vertices"):
            conn.execute(f"SELECT * FROM {table}").fetchall()


def _bare_round(files: list[Path], models: Path, path: Path, readout: bool) -> float:
    store = EventStore(path, seed=1)
    run = bare_pipeline(store, models, "synthetic", _plain_readout if readout else None)
    start = time.process_time()
    for batch, hepmc in enumerate(files):
        run(hepmc, batch)
    elapsed = time.process_time() - start
    del run
    store.db = None
    return elapsed


def _driver_round(files: list[Path], models: Path, work: Path, name: str) -> float:
    store = EventStore(work / f"{name}.db", seed=1)
    pipeline = LamarrPipeline(store, models, "synthetic")
    counts = [_count_events(path) for path in files]
    start = time.process_time()
    for batch, (path, count) in enumerate(zip(files, counts, strict=True)):
        pipeline.process(path, 0, batch, count)
    write_ntuple(work / f"{name}.root", pipeline.results(), {"bench": "overhead"})
    elapsed = time.process_time() - start
    pipeline.close()
    return elapsed


def overhead(files: list[Path], models: Path, work: Path, repeat: int) -> dict[str, Any]:
    """Median CPU times: bare SQLamarr, bare + plain read-out, our driver (alternating)."""
    bare: list[float] = []
    readout: list[float] = []
    driver: list[float] = []
    for round_ in range(repeat):
        bare.append(_bare_round(files, models, work / f"bare{round_}.db", readout=False))
        readout.append(_bare_round(files, models, work / f"readout{round_}.db", readout=True))
        driver.append(_driver_round(files, models, work, f"driver{round_}"))
    b, r, d = (statistics.median(x) for x in (bare, readout, driver))
    return {
        "bare_sqlamarr_cpu_s": round(b, 4),
        "bare_plus_plain_readout_cpu_s": round(r, 4),
        "driver_with_ntuple_cpu_s": round(d, 4),
        "overhead_vs_bare_percent": round(100 * (d - b) / b, 2),
        "overhead_vs_bare_plus_readout_percent": round(100 * (d - r) / r, 2),
        "rounds": repeat,
    }


def _lhcb_bare_round(files: list[Path], config: ModelConfig, path: Path) -> float:
    store = EventStore(path, seed=1)
    run = bare_lhcb_pipeline(store, config, LHCB_CONDITION)
    start = time.process_time()
    for batch, hepmc in enumerate(files):
        run(hepmc, batch)
    elapsed = time.process_time() - start
    del run
    store.db = None
    return elapsed


def _lhcb_driver_round(
    files: list[Path], config: ModelConfig, work: Path, name: str
) -> tuple[float, dict[str, Any]]:
    store = EventStore(work / f"{name}.db", seed=1)
    pipeline = LhcbPipeline(store, config, LHCB_CONDITION)
    counts = [_count_events(path) for path in files]
    start = time.process_time()
    for batch, (path, count) in enumerate(zip(files, counts, strict=True)):
        pipeline.process(path, 0, batch, count)
    trees = pipeline.results()
    write_ntuple(work / f"{name}.root", trees, {"bench": "overhead"})
    elapsed = time.process_time() - start
    pipeline.close()
    sizes = {
        "events": sum(counts),
        "charged_particles_per_event": len(trees["MCTracks"]["p"]) / sum(counts),
        "tracks_per_event": len(trees["Tracks"]["p"]) / sum(counts),
    }
    return elapsed, sizes


def lhcb_overhead(
    files: list[Path], config: ModelConfig, work: Path, repeat: int
) -> dict[str, Any]:
    """Median CPU times of SQLamarr's reference chain and of our driver (alternating)."""
    bare: list[float] = []
    driver: list[float] = []
    sizes: dict[str, Any] = {}
    for round_ in range(repeat):
        bare.append(_lhcb_bare_round(files, config, work / f"lhcb-bare{round_}.db"))
        elapsed, sizes = _lhcb_driver_round(files, config, work, f"lhcb-driver{round_}")
        driver.append(elapsed)
    b, d = statistics.median(bare), statistics.median(driver)
    return {
        **sizes,
        "reference_chain_cpu_s": round(b, 4),
        "driver_with_ntuple_cpu_s": round(d, 4),
        "events_per_s_per_core_driver": round(sizes["events"] / d, 2),
        "overhead_vs_reference_percent": round(100 * (d - b) / b, 2),
        "overhead_each_round_percent": [
            round(100 * (x - y) / y, 2) for x, y in zip(driver, bare, strict=True)
        ],
        "rounds": repeat,
    }


def lhcb_files(kind: str, n_events: int, batch_size: int, work: Path) -> list[Path]:
    """HepMC2 batches of particle-gun or Pythia minimum-bias events, in MeV and mm."""
    if kind == "gun":
        events = gun_events(GunSettings(), n_events, seed=1)
    else:
        events = _pythia(PythiaSettings(), n_events)
    return [path for path, _ in write_batches(events, n_events, batch_size, work / f"lhcb-{kind}")]


def _count_events(path: Path) -> int:
    with path.open() as handle:
        return sum(1 for line in handle if line.startswith("E "))


def main(argv: list[str] | None = None) -> int:
    """Run every measurement and print a table (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="models directory (built if omitted)")
    parser.add_argument("--gun-events", type=int, default=3000)
    parser.add_argument("--pythia-events", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--lhcb-only", action="store_true", help="only the LHCb-chain measurements")
    parser.add_argument("--lhcb-gun-events", type=int, default=1000)
    parser.add_argument("--lhcb-pythia-events", type=int, default=100)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="lamarr-bench-", dir=base) as tmp:
        work = Path(tmp)
        config = check_models(LHCB_MODELS)
        lhcb = {
            "lhcb_driver_overhead_gun": lhcb_overhead(
                lhcb_files("gun", args.lhcb_gun_events, args.batch_size, work),
                config,
                work,
                args.repeat,
            ),
            "lhcb_driver_overhead_pythia": lhcb_overhead(
                lhcb_files("pythia", args.lhcb_pythia_events, args.batch_size // 5, work),
                config,
                work,
                args.repeat,
            ),
        }
        if args.lhcb_only:
            results: dict[str, Any] = {
                **lhcb,
                "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            }
            print(json.dumps(results, indent=2, default=float))
            if args.json:
                args.json.write_text(json.dumps(results, indent=2, default=float) + "\n")
            return 0
        models = args.models
        if models is None:
            from lamarr_job.build import build_models

            models = work / "models"
            build_models(models, budget="quick")
        gun = full_chain("gun", args.gun_events, args.batch_size, models, work)
        pythia = full_chain("pythia", args.pythia_events, args.batch_size // 5, models, work)
        with_partons = full_chain(
            "pythia-with-partons", args.pythia_events, args.batch_size // 5, models, work
        )
        with_partons.pop("files")
        results = {
            "particle_gun_full_chain": gun,
            "pythia_minbias_full_chain": pythia,
            "pythia_minbias_full_chain_partons_kept": with_partons,
            "driver_overhead_gun": overhead(gun.pop("files"), models, work, args.repeat),
            "driver_overhead_pythia": overhead(pythia.pop("files"), models, work, args.repeat),
            **lhcb,
            "published_lamarr_costs": PUBLISHED,
            "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        }
    print(json.dumps(results, indent=2, default=float))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
