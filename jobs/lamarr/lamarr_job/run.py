"""One task: generate the events of one run number and simulate them with Lamarr."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from . import __version__
from .generators import gun_events, pythia_events, start_pythia, write_batches
from .hepmc_input import hepmc_events, input_files
from .lhcb import LhcbPipeline
from .manifest import model_hashes, validate_models_dir
from .modelconfig import check_condition, check_models
from .output import summarise, write_json, write_ntuple
from .pipeline import EventStore, LamarrPipeline
from .signal import candidates
from .spec import RunConfig

SUMMARY_NAME = "summary.json"
SHM_MIN_FREE = 1 << 30


def ntuple_name(run: int) -> str:
    """File name of a run's nTuple."""
    return f"lamarr_run{run:06d}.root"


def work_base(config: RunConfig) -> Path:
    """Where the event store and the HepMC batches live while a run is processed.

    The node-local scratch if the site gives one, else ``/dev/shm`` (SQLite's
    fsyncs cost nothing on tmpfs; the files hold one batch at a time) when it
    has ``SHM_MIN_FREE`` bytes free (containers may give a 64 MiB one), else the
    output directory.
    """
    if config.scratch is not None:
        return config.scratch
    shm = Path("/dev/shm")
    if (
        shm.is_dir()
        and os.access(shm, os.W_OK | os.X_OK)
        and shutil.disk_usage(shm).free >= SHM_MIN_FREE
    ):
        return shm
    return config.out_dir


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"lamarr_job": __version__}
    for dist in ("SQLamarr", "pythia8mc", "pyhepmc", "uproot", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def generate(config: RunConfig) -> dict[str, Any]:
    """Run one task and return its summary (also written to ``summary.json``).

    A banned run writes a summary saying so and nothing else. Models are checked
    (``modelconfig.check_models``) before any event is generated; a failure raises
    ``ModelsError`` (exit 2). The model configuration chooses the pipeline (the
    demo models' or LHCb's) and, unless ``pv_condition`` is set, the PV smearing row.
    """
    out_dir = config.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.run in config.banned_runs:
        summary = {"run": config.run, "skipped": True, "reason": "run number is banned"}
        write_json(out_dir / SUMMARY_NAME, summary)
        return summary
    models = check_models(config.models)
    hashes = models.hashes()
    if models.pipeline == "demo":
        hashes = model_hashes(validate_models_dir(config.models))
    condition = config.pv_condition or models.pv_smearing.condition
    check_condition(models, condition)
    seeds = config.seeds()
    settings = config.settings()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="lamarr-", dir=work_base(config)))
    try:
        if config.generator == "gun":
            events = gun_events(config.gun, config.events, seeds["generator"])
        elif config.generator == "hepmc":
            assert config.hepmc is not None  # spec.py requires it for this generator
            events = hepmc_events(input_files(config.hepmc), config.events)
        else:
            pythia, pythia_lines = start_pythia(config.pythia, seeds["pythia"])
            settings["generator"]["lines"] = list(pythia_lines)  # as given, channels added
            events = pythia_events(pythia, config.pythia, config.events)
        store = EventStore(work / "events.db", seeds["sqlamarr"])
        pipeline: LamarrPipeline
        if models.pipeline == "lhcb":
            pipeline = LhcbPipeline(store, models, condition)
        else:
            pipeline = LamarrPipeline(store, config.models, condition)
        try:
            hepmc_dir = out_dir / "hepmc" if config.keep_hepmc else work / "hepmc"
            batches = write_batches(events, config.events, config.batch_size, hepmc_dir)
            for batch, (path, count) in enumerate(batches):
                pipeline.process(path, config.run, batch, count)
                if not config.keep_hepmc:
                    path.unlink()
            trees = pipeline.results()
            if config.generator == "pythia" and config.pythia.signal and models.pipeline == "lhcb":
                trees["Candidates"] = candidates(
                    trees["Tracks"], trees["MCTracks"], config.pythia.signal
                )
        finally:
            pipeline.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    provenance = {
        "run": config.run,
        "seeds": seeds,
        "seed_salt": config.seed_salt,
        "settings": settings,
        "models": {
            "path": str(config.models),
            "name": models.name,
            "pipeline": models.pipeline,
            "pv_condition": condition,
            "sha256": hashes,
        },
        "versions": _versions(),
    }
    summary = {
        "run": config.run,
        "skipped": False,
        **summarise(trees, pipeline.events_loaded),
        "ntuple": ntuple_name(config.run),
        "seconds": round(time.monotonic() - started, 3),
        "provenance": provenance,
    }
    write_ntuple(out_dir / ntuple_name(config.run), trees, provenance)
    write_json(out_dir / SUMMARY_NAME, summary)
    return summary
