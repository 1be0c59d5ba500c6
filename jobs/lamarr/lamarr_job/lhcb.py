"""LHCb's tracking chain on SQLamarr (the ``lhcb`` pipeline of a model configuration).

The stages and their SQL are in ``lhcb_sql.py``; this module builds the SQLamarr
transformers from a checked :class:`~.modelconfig.ModelConfig` and collects the
persisted tables batch by batch with the same checks as the demo pipeline
(event count per batch, truth links across batches; see ``pipeline.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import lhcb_sql as q
from . import queries as demo_queries
from .modelconfig import ModelConfig
from .pipeline import Columns, EventStore, LamarrPipeline, fetch

ANCESTRY_COLUMNS: tuple[str, ...] = ("mother_pid", "mother_key", "gmother_pid", "gmother_key")
PROBABILITY_COLUMNS: tuple[str, ...] = (
    "acceptance",
    *q.STAGE_OUTPUTS["efficiency"],
)
#: Columns of the nTuple's ``MCTracks``: every particle the acceptance model saw.
MC_OUTPUT: tuple[str, ...] = (
    *(c for c in q.TRUTH_COLUMNS if c not in ("mcparticle_id", "genevent_id")),
    *PROBABILITY_COLUMNS,
    "track_type",
    "event",
)
#: Truth columns copied onto each track through its truth link.
TRACK_FROM_TRUTH: tuple[str, ...] = ("evt", "event", "pid", "charge", *ANCESTRY_COLUMNS)


def _rows(ids: npt.NDArray[Any], wanted: npt.NDArray[Any], table: str) -> npt.NDArray[Any]:
    """Rows of the sorted ``ids`` holding each of ``wanted`` (all must be there)."""
    rows = np.searchsorted(ids, wanted)
    if len(wanted) and (rows.max() >= len(ids) or not np.array_equal(ids[rows], wanted)):
        raise RuntimeError(f"{table}: particle ids missing (tables of one batch disagree)")
    return rows


def _sorted(columns: Columns) -> Columns:
    order = np.argsort(columns["mcparticle_id"], kind="stable")
    return {k: v[order] for k, v in columns.items()}


def covariance_matrix(outputs: Columns) -> Columns:
    """The upper triangle ``cov{i}{j}`` from the covariance model's outputs.

    sigma_i = sqrt(exp(log_cov_ClosestToBeam_i_i)); cov_ij = corr_ClosestToBeam_i_j
    sigma_i sigma_j off the diagonal, sigma_i**2 on it (the reference's SQL, with
    its ``cov44 = sig4 * sig3`` written as the variance).
    """
    sigma = [np.sqrt(np.exp(outputs[f"log_cov_ClosestToBeam_{i}_{i}"])) for i in range(5)]
    out: Columns = {}
    for i in range(5):
        for j in range(i, 5):
            corr = 1.0 if i == j else outputs[f"corr_ClosestToBeam_{i}_{j}"]
            out[f"cov{i}{j}"] = corr * sigma[i] * sigma[j]
    return out


def build_lhcb_algorithms(db: Any, config: ModelConfig, condition: str) -> dict[str, list[Any]]:
    """Return the SQLamarr transformers of LHCb's chain, grouped by stage.

    The order (and so the sequence of random draws) is the reference's: PV
    finding, particle selection, PV smearing, acceptance, efficiency, track type,
    propagation to the point closest to the beam, resolution, covariance. The
    covariance matrix is computed in numpy (``covariance_matrix``); the persistent
    copies of the model outputs and the truth table (with ancestry) come after
    every random draw.
    """
    import SQLamarr

    def plugin(stage: str, output_table: str) -> Any:
        entry = config.models[stage]
        lib = str(config.path(entry.file))
        query = q.model_query(stage, entry.inputs)
        if entry.noise:
            return SQLamarr.GenerativePlugin(
                db,
                lib,
                entry.function,
                query,
                output_table,
                list(entry.outputs),
                entry.noise,
                ["mcparticle_id"],
            )
        return SQLamarr.Plugin(
            db, lib, entry.function, query, output_table, list(entry.outputs), ["mcparticle_id"]
        )

    pv = config.pv_smearing
    return {
        "fix_loader": [SQLamarr.EditEventStore(db, [demo_queries.DROP_PHANTOM_EVENTS])],
        "truth": [
            SQLamarr.PVFinder(db),
            SQLamarr.MCParticleSelector(db),
            SQLamarr.PVReconstruction(db, str(config.path(pv.file)), pv.table, condition),
        ],
        "efficiency": [
            plugin("acceptance", "tmp_acceptance_out"),
            plugin("efficiency", "tmp_efficiency_out"),
            SQLamarr.TemporaryTable(
                db,
                "tmp_particles_recoed_as",
                ["mcparticle_id", "track_type"],
                q.ASSIGN_TRACK_TYPE,
                True,
            ),
        ],
        "propagation": [
            SQLamarr.TemporaryTable(
                db,
                "tmp_closest_to_beam",
                ["mcparticle_id", "x", "y", "z"],
                q.PROPAGATE_TO_CLOSEST_TO_BEAM,
                True,
            )
        ],
        "parameterisations": [
            plugin("resolution", "tmp_resolution_out"),
            plugin("covariance", "tmp_covariance_out"),
        ],
        "persist": [
            *(
                SQLamarr.TemporaryTable(
                    db,
                    table,
                    ["mcparticle_id", *q.STAGE_OUTPUTS[stage]],
                    q.copy_query(source, stage),
                    True,
                )
                for table, (source, stage) in q.PERSISTED_OUTPUTS.items()
            ),
            SQLamarr.TemporaryTable(db, "Truth", list(q.TRUTH_COLUMNS), q.TRUTH, True),
        ],
    }


class LhcbPipeline(LamarrPipeline):
    """Run batches of HepMC files through LHCb's tracking chain.

    Parameters
    ----------
    store
        The event store (file database).
    config
        A checked model configuration of the ``lhcb`` pipeline.
    condition
        Row of the PV smearing table (e.g. ``2016_pp_MagUp``).
    """

    def __init__(self, store: EventStore, config: ModelConfig, condition: str) -> None:
        self.config = config
        super().__init__(store, config.directory, condition)

    def _build(self, db: Any, condition: str) -> dict[str, list[Any]]:
        return build_lhcb_algorithms(db, self.config, condition)

    def _collect(self, expected_events: int, hepmc: Any) -> None:
        first_event = self.events_loaded
        conn = self._check_events(expected_events, hepmc)
        self._collect_pvs(conn)
        # Joined here by particle id (sorting, binary search) rather than in SQL:
        # SQLamarr's tables have no keys, and its SQLite nested loops over them.
        truth = _sorted(fetch(conn, "Truth", q.TRUTH_COLUMNS))
        ids = truth["mcparticle_id"]
        acceptance = _sorted(fetch(conn, "AcceptanceOut", ("mcparticle_id", "acceptance")))
        efficiency = _sorted(
            fetch(conn, "EfficiencyOut", ("mcparticle_id", *q.STAGE_OUTPUTS["efficiency"]))
        )
        recoed = fetch(conn, "tmp_particles_recoed_as", ("mcparticle_id", "track_type"))
        resolution = _sorted(
            fetch(conn, "ResolutionOut", ("mcparticle_id", *q.STAGE_OUTPUTS["resolution"]))
        )
        ctb = _sorted(fetch(conn, "tmp_closest_to_beam", ("mcparticle_id", "x", "y", "z")))
        cov = _sorted(
            fetch(conn, "CovarianceOut", ("mcparticle_id", *q.STAGE_OUTPUTS["covariance"]))
        )

        mc: Columns = {c: truth[c] for c in q.TRUTH_COLUMNS}
        for table in (acceptance, efficiency):
            rows = _rows(table["mcparticle_id"], ids, "model outputs")
            for column, values in table.items():
                if column != "mcparticle_id":
                    mc[column] = values[rows]
        mc["track_type"] = np.full(len(ids), float(q.NOT_ACCEPTED))
        mc["track_type"][_rows(ids, recoed["mcparticle_id"], "tracks")] = recoed["track_type"]
        events = np.sort(fetch(conn, "GenEvents", ("genevent_id",))["genevent_id"])
        # Index of the event in the run (``evt`` is the number the generator wrote,
        # which input files may repeat).
        mc["event"] = (np.searchsorted(events, mc.pop("genevent_id")) + first_event).astype(
            np.float64
        )

        track_ids = resolution["mcparticle_id"]
        rows = _rows(ids, track_ids, "tracks")
        at_ctb = _rows(ctb["mcparticle_id"], track_ids, "tmp_closest_to_beam")
        tracks: Columns = {
            "track_type": mc["track_type"][rows],
            "mc_x": ctb["x"][at_ctb],
            "mc_y": ctb["y"][at_ctb],
            "mc_z": ctb["z"][at_ctb],
            "mc_tx": truth["tx"][rows],
            "mc_ty": truth["ty"][rows],
            "mc_p": truth["p"][rows],
            **{c: resolution[c] for c in ("dx", "dy", "dz", "dtx", "dty", "dp")},
            "chi2PerDoF": resolution["chi2PerDoF"],
            "nDoF": np.round(resolution["nDoF_f"]),
            "ghostProb": resolution["ghostProb"],
        }
        for name in ("x", "y", "z", "tx", "ty", "p"):
            tracks[name] = tracks[f"mc_{name}"] + tracks[f"d{name}"]
        # The sign of p is kept: an upstream track's p + dp can be negative in the
        # tails of the resolution model (dp/p spans -1.9 to +44 at 100 GeV).
        tracks["pz"] = tracks["p"] / np.sqrt(1 + tracks["tx"] ** 2 + tracks["ty"] ** 2)
        tracks["px"] = tracks["tx"] * tracks["pz"]
        tracks["py"] = tracks["ty"] * tracks["pz"]
        at_cov = _rows(cov["mcparticle_id"], track_ids, "CovarianceOut")
        tracks.update(covariance_matrix({k: v[at_cov] for k, v in cov.items()}))
        for column in TRACK_FROM_TRUTH:
            tracks[column] = mc[column][rows]
        tracks["mc_key"] = (rows + self._n_mc).astype(np.float64)
        mc["mc_key"] = np.arange(self._n_mc, self._n_mc + len(ids), dtype=np.float64)
        self._n_mc += len(ids)
        self._mc.append(mc)
        self._tracks.append(tracks)

    def _columns(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return (*MC_OUTPUT, "mc_key"), (*q.TRACK_COLUMNS, *TRACK_FROM_TRUTH, "mc_key")


def bare_lhcb_pipeline(store: EventStore, config: ModelConfig, condition: str) -> Any:
    """Return ``f(hepmc, batch)``: SQLamarr's reference chain alone (load, execute, clean).

    The baseline of the driver-overhead benchmark: the reference's algorithms
    (what ``src/main.cpp`` runs, with its persisted tables), without our
    persisted ``MCTracks``/``Tracks``/``Ancestry``, event-count check, read-out
    or nTuple.
    """
    import SQLamarr

    db = store.open()
    stages = build_lhcb_algorithms(db, config, condition)
    stages.pop("persist")
    pipeline = SQLamarr.Pipeline([alg for stage in stages.values() for alg in stage])
    clean = SQLamarr.Pipeline([SQLamarr.CleanEventStore(db)])

    def run(hepmc: Any, batch: int) -> None:
        store.load(hepmc, 0, batch)
        pipeline.execute()
        clean.execute()

    return run
