"""Lamarr flash-simulation payload for fcgtainer.

Generator-level events (Pythia 8 or a particle gun) are written as HepMC2 and
run through a pipeline of parameterisations on the SQLamarr engine; the output
of each run is a ROOT nTuple plus a JSON summary.

Entry points (``python3 -m lamarr_job ...``):

- ``generate --spec SPEC``: one task, one run number (fcgtainer payload contract);
- ``build-models --out DIR``: train, transpile (scikinC) and compile the models;
- ``validate-models DIR``: check a models directory against its manifest.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
