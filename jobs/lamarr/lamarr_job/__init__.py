"""Lamarr flash-simulation payload for fcgtainer.

Generator-level events (a particle gun, Pythia 8, or staged HepMC files) are
written as HepMC2 batches and run through a pipeline of parameterisations on the
SQLamarr engine (LHCb's tracking chain or the demo models, as the models
directory's ``models.yaml`` says); the output of each run is a ROOT nTuple plus a
JSON summary.

Entry points (``python3 -m lamarr_job ...``):

- ``generate --spec SPEC``: one task, one run number (fcgtainer payload contract);
- ``check-models DIR``: check a models directory (pure Python, for submit time);
- ``merge NTUPLES... --out FILE``: many runs into one nTuple, provenance kept;
- ``validate NTUPLE --out DIR``: validation figures (JSON) and plots (PNG);
- ``build-models --out DIR``: train, transpile (scikinC) and compile the demo models;
- ``validate-models DIR``: check a demo models directory against its manifest.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
