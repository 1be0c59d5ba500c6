"""SQL of LHCb's tracking chain, as SQLamarr's reference pipeline runs it.

The reference is ``src/main.cpp`` of the public SQLamarr repository (LHCb's
configuration of the 2016 MagUp tracking parametrisation). The stages and the
order of the random draws are the same:

1. acceptance and efficiency classifiers on every charged generator-level
   particle with ``pz > 1`` MeV and a propagation charge;
2. a particle is accepted with the acceptance probability, then its track type
   is drawn from the efficiency outputs: 0 not reconstructed, 3 long,
   4 upstream, 5 downstream (``random_category`` returns its argument count,
   5, for the remainder, which is the downstream probability);
3. the truth state is propagated on a straight line to the point closest to
   the beam (``z_closest_to_beam``);
4. resolution (``dx, dy, dz, dtx, dty, dp``, ``chi2PerDoF``, ``nDoF_f``,
   ``ghostProb``) and covariance (log-variances and correlations of the state
   at the point closest to the beam), generative models with 128 noise inputs,
   for tracks of type 3 to 5;
5. the covariance matrix from the log-variances and correlations (computed in
   numpy by ``lhcb.covariance_matrix``, see below).

Model inputs are named in the model configuration (``models.yaml``); each name
is one SQL expression below, so a configuration chooses and orders the inputs
but cannot feed a model something this chain does not compute. Units are
LHCb's (MeV, mm), as the generator writes them.

Differences, none in what the models see or draw: the reference computes ``cov44``
as ``sig4 * sig3``; here it is ``sig4 * sig4``, the variance the matrix needs (its
diagonal is the exponent of the model's ``log_cov_ClosestToBeam_4_4``). SQLite's
math functions (``log10``, ``exp``, ``sqrt``) exist only in SQLite builds that have
them, and which SQLite library SQLamarr ends up calling depends on what the process
loaded first (after TensorFlow, one without them): ``log10(x)`` is written
``log(x) / log(10.)`` (``log`` is natural in SQLamarr's functions and base 10 in
SQLite's, so the ratio is right with either), and the covariance matrix, which
needs ``exp`` and ``sqrt``, is computed in numpy.
"""

from __future__ import annotations

#: Track types (LHCb's ``LHCb::Track::Types`` numbering, as the reference draws them).
TRACK_TYPES = {0: "not reconstructed", 3: "long", 4: "upstream", 5: "downstream"}
#: ``track_type`` of a particle outside the acceptance (the reference keeps no row).
NOT_ACCEPTED = -1

_KINEMATICS = {
    "mc_log10_p": "log(norm2(p.px, p.py, p.pz)) / log(10.)",
    "mc_tx": "p.px / p.pz",
    "mc_ty": "p.py / p.pz",
    "mc_is_e": "abs(p.pid) == 11",
    "mc_is_mu": "abs(p.pid) == 13",
    "mc_is_h": "(abs(p.pid) == 211 OR abs(p.pid) == 321 OR abs(p.pid) == 2212)",
}

#: Inputs available to the acceptance and efficiency models (truth at the origin vertex).
GENERATOR_FEATURES: dict[str, str] = {
    "mc_x": "ov.x",
    "mc_y": "ov.y",
    "mc_z": "ov.z",
    **_KINEMATICS,
    "mc_eta": "pseudorapidity(p.px, p.py, p.pz)",
    "mc_phi": "azimuthal(p.px, p.py, p.pz)",
    "mc_charge": "propagation_charge(p.pid)",
}

#: Inputs available to the resolution model (truth at the point closest to the beam).
RESOLUTION_FEATURES: dict[str, str] = {
    "mc_x": "ctb.x",
    "mc_y": "ctb.y",
    "mc_z": "ctb.z",
    **_KINEMATICS,
    "is_h": _KINEMATICS["mc_is_h"],
    "is_long": "(recguess.track_type == 3)",
    "is_upstream": "(recguess.track_type == 4)",
    "is_downstream": "(recguess.track_type == 5)",
}

#: Inputs available to the covariance model: the resolution's and its outputs.
COVARIANCE_FEATURES: dict[str, str] = {
    **RESOLUTION_FEATURES,
    "chi2PerDoF": "tmpres.chi2PerDoF",
    "nDoF_f": "tmpres.nDoF_f",
    "ghostProb": "tmpres.ghostProb",
}

#: Outputs each stage reads from its model, by name.
STAGE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "acceptance": ("acceptance",),
    "efficiency": ("not_recoed", "long", "upstream", "downstream"),
    "resolution": ("dx", "dy", "dz", "dtx", "dty", "dp", "chi2PerDoF", "nDoF_f", "ghostProb"),
    "covariance": (
        "log_cov_ClosestToBeam_0_0",
        "log_cov_ClosestToBeam_1_1",
        "log_cov_ClosestToBeam_2_2",
        "log_cov_ClosestToBeam_3_3",
        "log_cov_ClosestToBeam_4_4",
        "corr_ClosestToBeam_0_1",
        "corr_ClosestToBeam_0_2",
        "corr_ClosestToBeam_1_2",
        "corr_ClosestToBeam_0_3",
        "corr_ClosestToBeam_1_3",
        "corr_ClosestToBeam_2_3",
        "corr_ClosestToBeam_0_4",
        "corr_ClosestToBeam_1_4",
        "corr_ClosestToBeam_2_4",
        "corr_ClosestToBeam_3_4",
    ),
}

#: Inputs each stage can offer its model.
STAGE_FEATURES: dict[str, dict[str, str]] = {
    "acceptance": GENERATOR_FEATURES,
    "efficiency": GENERATOR_FEATURES,
    "resolution": RESOLUTION_FEATURES,
    "covariance": COVARIANCE_FEATURES,
}

_FROM = {
    "acceptance": """
FROM MCParticles AS p
INNER JOIN MCVertices AS ov ON p.production_vertex = ov.mcvertex_id
WHERE p.pz > 1. AND propagation_charge(p.pid) <> 0.""",
    "resolution": """
FROM MCParticles AS p
INNER JOIN MCVertices AS ov ON p.production_vertex = ov.mcvertex_id
INNER JOIN tmp_particles_recoed_as AS recguess ON p.mcparticle_id = recguess.mcparticle_id
INNER JOIN tmp_closest_to_beam AS ctb ON p.mcparticle_id = ctb.mcparticle_id
WHERE recguess.track_type BETWEEN 3 AND 5""",
    "covariance": """
FROM MCParticles AS p
INNER JOIN MCVertices AS ov ON p.production_vertex = ov.mcvertex_id
INNER JOIN tmp_particles_recoed_as AS recguess ON p.mcparticle_id = recguess.mcparticle_id
INNER JOIN tmp_resolution_out AS tmpres ON p.mcparticle_id = tmpres.mcparticle_id
INNER JOIN tmp_closest_to_beam AS ctb ON p.mcparticle_id = ctb.mcparticle_id
WHERE recguess.track_type BETWEEN 3 AND 5""",
}
_FROM["efficiency"] = _FROM["acceptance"]


def model_query(stage: str, inputs: tuple[str, ...]) -> str:
    """The SELECT feeding ``stage``'s model: ``p.mcparticle_id``, then ``inputs`` in order."""
    features = STAGE_FEATURES[stage]
    columns = ",\n  ".join(f"{features[name]} AS {name}" for name in inputs)
    return f"SELECT\n  p.mcparticle_id,\n  {columns}{_FROM[stage]}"


ASSIGN_TRACK_TYPE = """
SELECT eff.mcparticle_id, random_category(not_recoed, 0, 0, long, upstream) AS track_type
FROM tmp_efficiency_out AS eff
INNER JOIN tmp_acceptance_out AS acc ON eff.mcparticle_id = acc.mcparticle_id
WHERE random_category(1 - acc.acceptance, acc.acceptance) == 1
"""

PROPAGATE_TO_CLOSEST_TO_BEAM = """
WITH ctb AS (
  SELECT mcparticle_id,
    z_closest_to_beam(ov.x, ov.y, ov.z, p.px / p.pz, p.py / p.pz) AS z,
    ov.x AS x0, ov.y AS y0, ov.z AS z0, p.px / p.pz AS tx, p.py / p.pz AS ty
  FROM MCParticles AS p
  INNER JOIN MCVertices AS ov ON p.production_vertex = ov.mcvertex_id
)
SELECT mcparticle_id, x0 + (z - z0) * tx AS x, y0 + (z - z0) * ty AS y, z AS z FROM ctb
"""

COVARIANCE_COLUMNS: tuple[str, ...] = tuple(f"cov{i}{j}" for i in range(5) for j in range(i, 5))

#: Copies of the models' outputs (TEMPORARY tables, invisible from Python) made
#: persistent after the last random draw, so the order of the draws is the reference's.
PERSISTED_OUTPUTS: dict[str, tuple[str, str]] = {
    "AcceptanceOut": ("tmp_acceptance_out", "acceptance"),
    "EfficiencyOut": ("tmp_efficiency_out", "efficiency"),
    "ResolutionOut": ("tmp_resolution_out", "resolution"),
    "CovarianceOut": ("tmp_covariance_out", "covariance"),
}


def copy_query(source: str, stage: str) -> str:
    """SELECT copying a model's output table."""
    return f"SELECT mcparticle_id, {', '.join(STAGE_OUTPUTS[stage])} FROM {source}"


#: Truth of every particle the acceptance model saw, with its mother and grandmother
#: in the generator record (``*_key``: HepMC ids, unique in an event; 0 if none).
TRUTH_COLUMNS: tuple[str, ...] = (
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
    "mother_pid",
    "mother_key",
    "gmother_pid",
    "gmother_key",
)

TRUTH = """
SELECT p.mcparticle_id, p.genevent_id, ge.collision, p.pid, propagation_charge(p.pid),
  norm2(p.px, p.py, p.pz), pseudorapidity(p.px, p.py, p.pz), azimuthal(p.px, p.py, p.pz),
  p.px / p.pz, p.py / p.pz, ov.x, ov.y, ov.z,
  coalesce(mom.pid, 0), coalesce(mom.hepmc_id, 0),
  coalesce(gmom.pid, 0), coalesce(gmom.hepmc_id, 0)
FROM MCParticles AS p
INNER JOIN MCVertices AS ov ON p.production_vertex = ov.mcvertex_id
INNER JOIN GenEvents AS ge ON ge.genevent_id = p.genevent_id
INNER JOIN GenParticles AS gp ON gp.genparticle_id = p.genparticle_id
LEFT JOIN GenParticles AS mom ON mom.genparticle_id = (
  SELECT m.genparticle_id FROM GenParticles AS m
  WHERE m.end_vertex = gp.production_vertex ORDER BY m.genparticle_id LIMIT 1)
LEFT JOIN GenParticles AS gmom ON gmom.genparticle_id = (
  SELECT g.genparticle_id FROM GenParticles AS g
  WHERE g.end_vertex = mom.production_vertex ORDER BY g.genparticle_id LIMIT 1)
WHERE p.pz > 1. AND propagation_charge(p.pid) <> 0.
"""

#: Columns of the nTuple's ``Tracks``: truth at the point closest to the beam, the
#: model outputs, the reconstructed state (truth + model deviation), the covariance.
TRACK_COLUMNS: tuple[str, ...] = (
    "track_type",
    "mc_x",
    "mc_y",
    "mc_z",
    "mc_tx",
    "mc_ty",
    "mc_p",
    "dx",
    "dy",
    "dz",
    "dtx",
    "dty",
    "dp",
    "chi2PerDoF",
    "nDoF",
    "ghostProb",
    "x",
    "y",
    "z",
    "tx",
    "ty",
    "p",
    "px",
    "py",
    "pz",
    *COVARIANCE_COLUMNS,
)
