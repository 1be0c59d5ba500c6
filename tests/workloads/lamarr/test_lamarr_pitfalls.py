"""SQLamarr 0.0rc7 pitfalls, shown on the raw engine and handled by our driver.

If an upgrade of SQLamarr fixes one of them, the "raw" test fails: drop the
workaround then, not the test of the driver.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lamarr_testing import read_trees, run_task

pytestmark = pytest.mark.workload


@pytest.fixture
def hepmc_file(tmp_path: Path) -> tuple[Path, int]:
    from lamarr_job.generators import GunSettings, gun_events, write_batches

    events = gun_events(GunSettings(particles=3), 7, seed=1)
    ((path, count),) = write_batches(events, 7, 7, tmp_path / "hepmc")
    return path, count


def test_raw_memory_database_is_invisible_from_python(hepmc_file: tuple[Path, int]) -> None:
    """Pitfall 1: an in-memory store is invisible from Python.

    SQLamarr bundles its own libsqlite3; Python's ``sqlite3`` module is another
    copy, so "shared-cache" memory databases are not shared between them.
    Run in a subprocess: after a failure SQLamarr's connection destructor can
    throw from C++ and abort the interpreter.
    """
    script = (
        "import sys, SQLamarr\n"
        "db = SQLamarr.SQLite3DB(':memory:').seed(1)\n"
        "SQLamarr.HepMC2DataLoader(db).load(sys.argv[1], 1, 0)\n"
        "SQLamarr.Pipeline([SQLamarr.PVFinder(db)]).execute()\n"
        "print('PIPELINE OK', flush=True)\n"
        "try:\n"
        "    with db.connect() as conn:\n"
        "        conn.execute('SELECT COUNT(*) FROM GenEvents').fetchall()\n"
        "except Exception as exc:\n"
        "    print('PYTHON FAILED', exc, flush=True)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(hepmc_file[0])],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert "PIPELINE OK" in proc.stdout, proc.stdout + proc.stderr
    assert "PYTHON FAILED no such table: GenEvents" in proc.stdout, proc.stdout + proc.stderr


def test_driver_uses_a_file_database(tmp_path: Path, hepmc_file: tuple[Path, int]) -> None:
    from lamarr_job.pipeline import EventStore

    store = EventStore(tmp_path / "events.db", seed=1)
    store.open()
    store.load(hepmc_file[0], 1, 0)
    assert store.path.is_file()
    assert store.query("SELECT COUNT(*) FROM GenParticles")[0][0] == 7 * (3 + 2)


def test_raw_loader_adds_a_phantom_event(tmp_path: Path, hepmc_file: tuple[Path, int]) -> None:
    """Pitfall 3: one extra, empty GenEvent after the last event of a file."""
    from lamarr_job.pipeline import EventStore

    store = EventStore(tmp_path / "events.db", seed=1)
    store.open()
    store.load(hepmc_file[0], 1, 0)
    assert store.query("SELECT COUNT(*) FROM GenEvents")[0][0] == hepmc_file[1] + 1
    empty = store.query(
        "SELECT COUNT(*) FROM GenEvents WHERE genevent_id NOT IN "
        "(SELECT genevent_id FROM GenParticles)"
    )
    assert empty[0][0] == 1


def test_raw_plugin_output_is_invisible_from_python(
    tmp_path: Path, hepmc_file: tuple[Path, int], models_dir: Path
) -> None:
    """Pitfall 2: plugin outputs are TEMPORARY tables of the C++ connection."""
    import SQLamarr
    from lamarr_job.pipeline import EventStore, build_algorithms

    store = EventStore(tmp_path / "events.db", seed=1)
    db = store.open()
    stages = build_algorithms(db, models_dir, "synthetic")
    store.load(hepmc_file[0], 1, 0)
    SQLamarr.Pipeline([alg for stage in stages.values() for alg in stage]).execute()
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        store.query("SELECT COUNT(*) FROM tmp_resolution")
    persisted = store.query("SELECT COUNT(*) FROM Tracks")[0][0]
    reconstructed = store.query("SELECT SUM(reconstructed) FROM MCTracks")[0][0]
    assert persisted == reconstructed > 0


@pytest.mark.parametrize(("events", "batch_size"), [(23, 10), (10, 10), (5, 50), (1, 1)])
def test_every_event_is_simulated_including_the_last_batch(
    tmp_path: Path, models_dir: Path, events: int, batch_size: int
) -> None:
    summary = run_task(
        tmp_path, models_dir, run=5, events=events, batch_size=batch_size, gun_particles=2
    )
    assert summary["events"] == events
    trees = read_trees(tmp_path / summary["ntuple"])
    assert sorted(trees["PVs"]["evt"].tolist()) == list(range(events))
    assert sorted(set(trees["MCTracks"]["evt"].tolist())) == list(range(events))
    assert len(trees["MCTracks"]["p"]) == 2 * events


def test_ids_restart_per_batch_but_truth_links_stay_global(
    tmp_path: Path, models_dir: Path
) -> None:
    """Pitfall 4: CleanEventStore resets autoincrement ids between batches."""
    summary = run_task(tmp_path, models_dir, run=6, events=40, batch_size=10)
    trees = read_trees(tmp_path / summary["ntuple"])
    keys = trees["Tracks"]["mc_key"]
    assert np.array_equal(trees["MCTracks"]["mc_key"], np.arange(len(trees["MCTracks"]["p"])))
    assert keys.max() >= 30 * 10 * 0.5  # links reach into the last batch
    assert np.all(trees["MCTracks"]["evt"][keys] == trees["Tracks"]["evt"])


def _origins_off_their_event_pv(out: Path, summary: dict) -> int:
    """Particles born more than 5 mm from their own event's PV (along z).

    Genuine displaced origins come from decays of the few particles the
    selector keeps with an end vertex (taus: well under 5 mm); beam-spot
    sigma_z is 45 mm, so a particle given another event's PV lands far away.
    """
    trees = read_trees(out / summary["ntuple"])
    mc, pvs = trees["MCTracks"], trees["PVs"]
    pv_z = dict(zip(pvs["evt"].tolist(), pvs["mc_z"].tolist(), strict=True))
    expected = np.array([pv_z[e] for e in mc["evt"].tolist()])
    return int(np.sum(np.abs(mc["z0"] - expected) > 5.0))


def test_raw_particle_selector_mislinks_vertices_in_parton_graphs(
    tmp_path: Path, models_dir: Path
) -> None:
    """Pitfall 7: MCParticleSelector's ``INSERT OR IGNORE`` + ``last_insert_rowid``.

    A particle reached twice through a multi-mother vertex (parton showers,
    strings) makes the selector update another particle's vertices: some
    particles get the primary vertex of another event. Without partons in the
    record (our default) they do not.
    """
    common = {"run": 21, "events": 5, "batch_size": 5, "generator": "pythia"}
    with_partons = run_task(tmp_path / "a", models_dir, pythia_keep_partons=True, **common)
    without = run_task(tmp_path / "b", models_dir, **common)
    assert _origins_off_their_event_pv(tmp_path / "a", with_partons) > 0
    assert _origins_off_their_event_pv(tmp_path / "b", without) == 0
    assert with_partons["charged_particles"] == without["charged_particles"]
