"""SQL of the Lamarr pipeline: table layouts and the queries of each stage.

Kept apart from the driver so that the data flow reads top to bottom here and
the SQLamarr plumbing reads on its own in ``pipeline.py``. Functions such as
``norm2``, ``pseudorapidity``, ``propagation_charge``, ``z_closest_to_beam``,
``slopes_to_cartesian`` and ``random_uniform`` are SQLamarr's SQLite extensions.
``log`` is natural in SQLamarr and base 10 in SQLite's math extension, so
``log(x) / log(10.)`` is used: it is right with either.
"""

from __future__ import annotations

#: Columns of the persisted truth table (one row per charged particle).
MC_COLUMNS: tuple[str, ...] = (
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
    "x_ctb",
    "y_ctb",
    "log10_p",
    "acceptance",
    "efficiency",
    "accepted",
    "reconstructed",
)
#: Columns of the truth table that go to the nTuple (the rest are pipeline internals).
MC_OUTPUT: tuple[str, ...] = (
    "mcparticle_id",
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
    "acceptance",
    "efficiency",
    "accepted",
    "reconstructed",
)
#: Columns of the persisted reconstructed-track table.
TRACK_COLUMNS: tuple[str, ...] = (
    "mcparticle_id",
    "evt",
    "charge",
    "p",
    "px",
    "py",
    "pz",
    "eta",
    "tx",
    "ty",
    "x_ctb",
    "y_ctb",
    "z_ctb",
    "p_err",
    "dllk",
    "dllmu",
)
#: Track columns that are copies of the truth particle's (see ``TRACKS``): the driver
#: takes them from the truth table through the truth link instead of reading them twice.
TRACK_FROM_TRUTH: tuple[str, ...] = ("evt", "charge")
#: Track columns read from the persisted ``Tracks`` table.
TRACK_READ: tuple[str, ...] = tuple(c for c in TRACK_COLUMNS if c not in TRACK_FROM_TRUTH)
#: Columns of the reconstructed primary vertices (with their true position).
PV_COLUMNS: tuple[str, ...] = (
    "evt",
    "x",
    "y",
    "z",
    "sigma_x",
    "sigma_y",
    "sigma_z",
    "mc_x",
    "mc_y",
    "mc_z",
)


PROPAGATE = """
SELECT
  p.mcparticle_id, p.genevent_id, ge.collision, p.pid, propagation_charge(p.pid),
  norm2(p.px, p.py, p.pz), pseudorapidity(p.px, p.py, p.pz), azimuthal(p.px, p.py, p.pz),
  p.px / p.pz, p.py / p.pz,
  ov.x, ov.y, ov.z,
  z_closest_to_beam(ov.x, ov.y, ov.z, p.px / p.pz, p.py / p.pz)
FROM MCParticles AS p
INNER JOIN MCVertices AS ov ON p.production_vertex = ov.mcvertex_id
INNER JOIN GenEvents AS ge ON ge.genevent_id = p.genevent_id
WHERE p.pz > 0 AND propagation_charge(p.pid) <> 0
"""

DRAWS = """
SELECT mcparticle_id, random_uniform(), random_uniform() FROM propagated
"""

MC_TRACKS = """
SELECT
  t.mcparticle_id, t.genevent_id, t.evt, t.pid, t.charge, t.p, t.eta, t.phi, t.tx, t.ty,
  t.x0, t.y0, t.z0, t.z_ctb,
  t.x0 + t.tx * (t.z_ctb - t.z0), t.y0 + t.ty * (t.z_ctb - t.z0),
  log(t.p / 1000.) / log(10.),
  a.acceptance, e.efficiency,
  d.u_acc < a.acceptance,
  d.u_acc < a.acceptance AND d.u_eff < e.efficiency
FROM propagated AS t
INNER JOIN tmp_acceptance AS a ON a.mcparticle_id = t.mcparticle_id
INNER JOIN tmp_efficiency AS e ON e.mcparticle_id = t.mcparticle_id
INNER JOIN draws AS d ON d.mcparticle_id = t.mcparticle_id
"""

TRACK_INPUTS = """
SELECT mcparticle_id, log(p / 1000.) / log(10.) AS log10_p, eta
FROM propagated
"""

RECO_INPUTS = """
SELECT mcparticle_id, log10_p, eta FROM MCTracks WHERE reconstructed = 1
"""

PID_INPUTS = """
SELECT mcparticle_id, log10_p, eta,
  abs(pid) = 11, abs(pid) = 13, abs(pid) = 211, abs(pid) = 321, abs(pid) = 2212
FROM MCTracks WHERE reconstructed = 1
"""

TRACKS = """
SELECT mcparticle_id, evt, charge, p_r,
  slopes_to_cartesian(0, p_r, tx_r, ty_r),
  slopes_to_cartesian(1, p_r, tx_r, ty_r),
  slopes_to_cartesian(2, p_r, tx_r, ty_r),
  pseudorapidity(slopes_to_cartesian(0, p_r, tx_r, ty_r),
                 slopes_to_cartesian(1, p_r, tx_r, ty_r),
                 slopes_to_cartesian(2, p_r, tx_r, ty_r)),
  tx_r, ty_r, x_ctb, y_ctb, z_ctb, p_r * p_err_rel, dllk, dllmu
FROM (
  SELECT t.mcparticle_id, t.evt, t.charge, t.p * (1 + r.dp_rel) AS p_r,
    t.tx + r.dtx AS tx_r, t.ty + r.dty AS ty_r, t.x_ctb, t.y_ctb, t.z_ctb,
    c.p_err_rel, pid.dllk, pid.dllmu
  FROM MCTracks AS t
  INNER JOIN tmp_resolution AS r ON r.mcparticle_id = t.mcparticle_id
  INNER JOIN tmp_covariance AS c ON c.mcparticle_id = t.mcparticle_id
  INNER JOIN tmp_pid AS pid ON pid.mcparticle_id = t.mcparticle_id
)
"""

DROP_PHANTOM_EVENTS = (
    "DELETE FROM GenEvents WHERE genevent_id NOT IN (SELECT DISTINCT genevent_id FROM GenParticles)"
)
