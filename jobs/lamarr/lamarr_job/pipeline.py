"""The Lamarr pipeline on SQLamarr, and the workarounds for its pitfalls.

Pitfalls of SQLamarr 0.0rc7 that this driver works around (each has a test):

1. An in-memory store is invisible from Python: SQLamarr bundles its own
   libsqlite3 and Python's ``sqlite3`` module is another copy, so the
   "shared-cache" memory database of ``SQLite3DB()`` is not shared and
   ``db.connect()`` finds no tables. We always use a file database.
2. ``Plugin``/``GenerativePlugin`` write to TEMPORARY tables, which only the C++
   connection sees; Python (``db.connect()``) opens another connection and does
   not. The outputs we need are copied into tables made persistent with
   ``TemporaryTable(..., make_persistent=True)`` inside the same C++ chunk.
3. The loader checks ``reader.failed()`` *before* reading, so after the last
   event of a file it inserts one extra, empty GenEvent. We delete events
   without particles, and check that every event written comes back, including
   those of the last (short) batch.
4. ``CleanEventStore`` also empties ``sqlite_sequence``, so ids restart with
   every batch: truth links are resolved per batch into global row indices.
5. ``SQLite3DB.connect()`` opens a shared-cache Python connection and never
   closes it; a later store on the same path then joins the stale cache and
   reads old data. We read through our own read-only connection (no shared
   cache), in autocommit: no read transaction outlives its query, so each query
   sees the batch just executed and never blocks SQLamarr's writes.
6. The C++ connection destructor aborts the process when statements are alive:
   transformers are released before the database (``LamarrPipeline.close``).
7. ``MCParticleSelector`` uses ``INSERT OR IGNORE`` then ``last_insert_rowid``:
   a particle reached twice through a multi-mother vertex makes it update the
   vertices of another particle (even of another event). Parton showers and
   strings are full of such vertices, so the Pythia conversion leaves partons
   out by default (``generators._from_pythia``); the test shows both sides.

Results leave SQLite column by column through ADBC (Apache Arrow's database
connectivity; its SQLite driver fills Arrow buffers in C): about 45 ns a value,
where Python's ``sqlite3`` spends about 120 making a Python object of each.
"""

from __future__ import annotations

import contextlib
import sqlite3
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import queries as q
from .modelspec import PV_DB_NAME, PV_TABLE, spec_by_name

Columns = dict[str, npt.NDArray[Any]]


@dataclass
class EventStore:
    """A SQLamarr database on a file (never ``:memory:``, see pitfall 1)."""

    path: Path
    seed: int
    db: Any = None

    def open(self) -> Any:
        """Create the file database and seed SQLamarr's random generator."""
        import SQLamarr

        if self.path.exists():
            self.path.unlink()
        self.db = SQLamarr.SQLite3DB(str(self.path)).seed(self.seed)
        return self.db

    def load(self, hepmc: Path, run: int, batch: int) -> None:
        """Load one HepMC2 file (its events become GenEvents)."""
        import SQLamarr

        SQLamarr.HepMC2DataLoader(self.db).load(str(hepmc), run, batch)

    def reader(self) -> contextlib.closing[sqlite3.Connection]:
        """A read-only Python connection (no shared cache), closed on exit (pitfall 5)."""
        uri = f"file:{urllib.parse.quote(str(self.path))}?mode=ro"
        return contextlib.closing(sqlite3.connect(uri, uri=True))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a small read query through Python's ``sqlite3`` (persistent tables only)."""
        with self.reader() as conn:
            return list(conn.execute(sql).fetchall())

    def columnar(self) -> Any:
        """A read-only ADBC connection in autocommit for bulk reads (:func:`fetch`).

        Opening one costs ~2 ms (as much as reading a few thousand rows), so the
        pipeline keeps it for the whole run and closes it in ``close``.
        """
        import adbc_driver_sqlite.dbapi

        uri = f"file:{urllib.parse.quote(str(self.path))}?mode=ro"
        return adbc_driver_sqlite.dbapi.connect(uri, autocommit=True)


def fetch(conn: Any, table: str, columns: tuple[str, ...]) -> Columns:
    """Read ``columns`` of ``table`` (a table or a join) as float64 arrays.

    The Arrow type of a column follows its SQLite values: within one Arrow batch
    (the whole result here) integers and reals widen to double, across batches a
    change raises; never a silent guess. Every column becomes float64 here
    (integers up to 2**53 stay exact).
    """
    with contextlib.closing(conn.cursor()) as cursor:
        # One Arrow batch for a whole SQLamarr batch (the default, 1024 rows, costs ~10%).
        cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": "65536"})
        cursor.execute(f"SELECT {', '.join(columns)} FROM {table}")
        arrow = cursor.fetch_arrow_table()
    return {
        name: np.asarray(arrow.column(i).to_numpy(zero_copy_only=False), dtype=np.float64)
        for i, name in enumerate(columns)
    }


def build_algorithms(db: Any, models: Path, condition: str) -> dict[str, list[Any]]:
    """Return the SQLamarr transformers of the pipeline, grouped by stage.

    Parameters
    ----------
    db
        An open ``SQLamarr.SQLite3DB`` on a file.
    models
        A validated models directory.
    condition
        Row of the PV smearing table to use.

    Returns
    -------
    dict
        Ordered stages: ``fix_loader``, ``truth`` (PV finding, particle selection,
        PV smearing), ``propagation``, ``efficiency``, ``parameterisations``,
        ``persist``. Their concatenation is the pipeline.
    """
    import SQLamarr

    def plugin(name: str, query: str) -> Any:
        spec = spec_by_name(name)
        lib = str(models / spec.library)
        if spec.n_random:
            return SQLamarr.GenerativePlugin(
                db,
                lib,
                spec.name,
                query,
                f"tmp_{name}",
                list(spec.outputs),
                spec.n_random,
                ["mcparticle_id"],
            )
        return SQLamarr.Plugin(
            db, lib, spec.name, query, f"tmp_{name}", list(spec.outputs), ["mcparticle_id"]
        )

    propagated_cols = [
        "mcparticle_id",
        "genevent_id",
        "evt",
        "pid",
        "charge",
        "p",
        "eta",
        "phi",
        "tx",
        "ty",
        "x0",
        "y0",
        "z0",
        "z_ctb",
    ]
    return {
        "fix_loader": [SQLamarr.EditEventStore(db, [q.DROP_PHANTOM_EVENTS])],
        "truth": [
            SQLamarr.PVFinder(db),
            SQLamarr.MCParticleSelector(db),
            SQLamarr.PVReconstruction(db, str(models / PV_DB_NAME), PV_TABLE, condition),
        ],
        "propagation": [SQLamarr.TemporaryTable(db, "propagated", propagated_cols, q.PROPAGATE)],
        "efficiency": [
            plugin("acceptance", q.TRACK_INPUTS),
            plugin("efficiency", q.TRACK_INPUTS),
            SQLamarr.TemporaryTable(db, "draws", ["mcparticle_id", "u_acc", "u_eff"], q.DRAWS),
            SQLamarr.TemporaryTable(db, "MCTracks", list(q.MC_COLUMNS), q.MC_TRACKS, True),
        ],
        "parameterisations": [
            plugin("resolution", q.RECO_INPUTS),
            plugin("covariance", q.RECO_INPUTS),
            plugin("pid", q.PID_INPUTS),
        ],
        "persist": [SQLamarr.TemporaryTable(db, "Tracks", list(q.TRACK_COLUMNS), q.TRACKS, True)],
    }


class LamarrPipeline:
    """Run batches of HepMC files through SQLamarr and collect the outputs.

    Parameters
    ----------
    store
        The event store (file database).
    models
        A validated models directory.
    condition
        Row of the PV smearing table.
    """

    def __init__(self, store: EventStore, models: Path, condition: str) -> None:
        import SQLamarr

        self.store = store
        self.models = models
        db = store.open()
        self.stages = self._build(db, condition)
        algorithms = [alg for stage in self.stages.values() for alg in stage]
        self._pipeline: Any = SQLamarr.Pipeline(algorithms)
        self._clean: Any = SQLamarr.Pipeline([SQLamarr.CleanEventStore(db)])
        self._mc: list[Columns] = []
        self._tracks: list[Columns] = []
        self._pvs: list[Columns] = []
        self._n_mc = 0
        self._columnar: Any = None
        self.events_loaded = 0

    def close(self) -> None:
        """Release the transformers before the database.

        SQLamarr's connection destructor throws (and aborts the process) when
        ``sqlite3_close`` finds statements still alive, so order matters (the
        wrappers hold no reference cycles: dropping them frees them at once).
        """
        if self._columnar is not None:
            self._columnar.close()
            self._columnar = None
        self._pipeline = None
        self._clean = None
        self.stages = {}
        self.store.db = None

    def process(self, hepmc: Path, run: int, batch: int, expected_events: int) -> None:
        """Load one batch, run the pipeline, collect the persisted tables, clean.

        Raises
        ------
        RuntimeError
            If the number of events found differs from ``expected_events``.
        """
        self.store.load(hepmc, run, batch)
        self._pipeline.execute()
        self._collect(expected_events, hepmc)
        self._clean.execute()

    def _build(self, db: Any, condition: str) -> dict[str, list[Any]]:
        """The transformers of this pipeline (the demo models' here)."""
        return build_algorithms(db, self.models, condition)

    def _check_events(self, expected_events: int, hepmc: Path) -> Any:
        """Check the batch's event count; return the columnar connection."""
        if self._columnar is None:
            self._columnar = self.store.columnar()
        conn = self._columnar
        n_events = len(fetch(conn, "GenEvents", ("genevent_id",))["genevent_id"])
        if n_events != expected_events:
            raise RuntimeError(
                f"{hepmc}: {n_events} events in the store, {expected_events} written"
            )
        self.events_loaded += int(n_events)
        return conn

    def _collect_pvs(self, conn: Any) -> None:
        """Read the reconstructed primary vertices with their true positions."""
        pvs = fetch(
            conn,
            "Vertices AS v INNER JOIN MCVertices AS m ON m.mcvertex_id = v.mcvertex_id "
            "INNER JOIN GenEvents AS ge ON ge.genevent_id = v.genevent_id",
            (
                "ge.collision",
                "v.x",
                "v.y",
                "v.z",
                "v.sigma_x",
                "v.sigma_y",
                "v.sigma_z",
                "m.x",
                "m.y",
                "m.z",
            ),
        )
        self._pvs.append(dict(zip(q.PV_COLUMNS, pvs.values(), strict=True)))

    def _collect(self, expected_events: int, hepmc: Path) -> None:
        conn = self._check_events(expected_events, hepmc)
        mc = fetch(conn, "MCTracks", q.MC_OUTPUT)
        tracks = fetch(conn, "Tracks", q.TRACK_READ)
        self._collect_pvs(conn)
        order = np.argsort(mc["mcparticle_id"], kind="stable")
        mc = {k: v[order] for k, v in mc.items()}
        # Truth link: row of the particle in the run's MC table (ids restart per batch).
        rows = np.searchsorted(mc["mcparticle_id"], tracks["mcparticle_id"])
        truth = {c: mc[c][rows] for c in q.TRACK_FROM_TRUTH}
        tracks = {c: tracks[c] if c in tracks else truth[c] for c in q.TRACK_COLUMNS}
        tracks["mc_key"] = (rows + self._n_mc).astype(np.float64)
        mc["mc_key"] = np.arange(self._n_mc, self._n_mc + len(order), dtype=np.float64)
        self._n_mc += len(order)
        self._mc.append(mc)
        self._tracks.append(tracks)

    def _columns(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Columns of the ``MCTracks`` and ``Tracks`` trees."""
        return (*q.MC_OUTPUT, "mc_key"), (*q.TRACK_COLUMNS, "mc_key")

    def results(self) -> dict[str, Columns]:
        """Return the concatenated ``MCTracks``, ``Tracks`` and ``PVs`` columns."""

        def cat(parts: list[Columns], columns: tuple[str, ...]) -> Columns:
            if not parts:
                return {c: np.zeros(0) for c in columns}
            return {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}

        mc_columns, track_columns = self._columns()
        return {
            "MCTracks": cat(self._mc, mc_columns),
            "Tracks": cat(self._tracks, track_columns),
            "PVs": cat(self._pvs, q.PV_COLUMNS),
        }


def bare_pipeline(
    store: EventStore,
    models: Path,
    condition: str,
    readout: Callable[[EventStore], object] | None = None,
) -> Callable[[Path, int], None]:
    """Return ``f(hepmc, batch)``: the same SQLamarr algorithms, nothing else.

    The baseline for the driver-overhead benchmark: load, execute, clean, with no
    event-count check, no truth links and no output file. ``readout`` (called
    between execution and cleaning) lets a benchmark add the bare minimum a
    user needs to get the data out of SQLite.
    """
    import SQLamarr

    db = store.open()
    stages = build_algorithms(db, models, condition)
    algorithms = [alg for stage in stages.values() for alg in stage]
    pipeline = SQLamarr.Pipeline(algorithms)
    clean = SQLamarr.Pipeline([SQLamarr.CleanEventStore(db)])

    def run(hepmc: Path, batch: int) -> None:
        store.load(hepmc, 0, batch)
        pipeline.execute()
        if readout is not None:
            readout(store)
        clean.execute()

    return run
