"""The contract between the compiled models and the pipeline.

Each parameterisation is a C function in its own shared library. The pipeline's
SQL selects the inputs in the order listed here; the model build trains on the
same features computed with numpy. Changing a list here changes both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
PV_DB_NAME = "pv_smearing.db"
PV_TABLE = "PVSmearing"

#: Inputs shared by the tracking models: log10(p / GeV) and the pseudorapidity.
TRACK_INPUTS: tuple[str, ...] = ("log10_p", "eta")
PID_INPUTS: tuple[str, ...] = (*TRACK_INPUTS, "is_e", "is_mu", "is_pi", "is_k", "is_p")


@dataclass(frozen=True)
class ModelSpec:
    """One parameterisation: its C symbol, inputs, outputs and noise size.

    Attributes
    ----------
    name
        Model name; also the C symbol and the library's stem (``name.so``).
    kind
        ``"classifier"`` (sigmoid output), ``"regression"`` or ``"generative"``.
    inputs, outputs
        Feature names, in the order of the C arrays.
    n_random
        Number of standard-normal noise values (generative models only).
    """

    name: str
    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    n_random: int = 0

    @property
    def library(self) -> str:
        """File name of the shared library inside the models directory."""
        return f"{self.name}.so"


MODEL_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("acceptance", "classifier", TRACK_INPUTS, ("acceptance",)),
    ModelSpec("efficiency", "classifier", TRACK_INPUTS, ("efficiency",)),
    ModelSpec("resolution", "generative", TRACK_INPUTS, ("dp_rel", "dtx", "dty"), n_random=4),
    ModelSpec("covariance", "regression", TRACK_INPUTS, ("p_err_rel",)),
    ModelSpec("pid", "generative", PID_INPUTS, ("dllk", "dllmu"), n_random=3),
)


def spec_by_name(name: str) -> ModelSpec:
    """Return the spec of the model called ``name``."""
    for spec in MODEL_SPECS:
        if spec.name == name:
            return spec
    raise KeyError(name)
