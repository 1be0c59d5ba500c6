"""The model configuration (``models.yaml``) of a models directory, and its check.

A models directory names its parameterisations in ``models.yaml``::

    format: 1
    name: lhcb-2016MU
    pipeline: lhcb            # whose SQL feeds the models: lhcb | demo
    architecture: x86_64      # of the shared objects
    pv_smearing: {file: PrimaryVertexSmearing.db, table: PVSmearing,
                  condition: 2016_pp_MagUp, sha256: ...}
    models:
      acceptance: {file: lhcb.trk.2016MU.20230128.so, function: acceptance,
                   inputs: [mc_x, ...], outputs: [acceptance], noise: 0, sha256: ...}

:func:`check_models` verifies everything that can be known before a job runs:
every file present with its SHA-256, every library an ELF shared object of the
target architecture exporting the named function, inputs the pipeline can
compute and outputs it reads. It is pure Python (no TensorFlow, no SQLamarr, no
``dlopen``), so the host CLI runs it at submit time and the payload again before
it generates a single event. The demo build writes one too; a demo directory
built before (``manifest.json`` only) reads as the demo configuration.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelsError
from .manifest import sha256_file

CONFIG_NAME = "models.yaml"
CONFIG_FORMAT = 1
PIPELINES = ("lhcb", "demo")
_TOP_KEYS = {"format", "name", "pipeline", "architecture", "pv_smearing", "models", "license"}
_MODEL_KEYS = {"file", "function", "inputs", "outputs", "noise", "sha256"}
_PV_KEYS = {"file", "table", "condition", "sha256"}


@dataclass(frozen=True)
class ModelEntry:
    """One parameterisation: library, C function, inputs, outputs, noise size, hash."""

    stage: str
    file: str
    function: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    noise: int
    sha256: str


@dataclass(frozen=True)
class PvSmearing:
    """The PV smearing table: SQLite file, table, default condition, hash."""

    file: str
    table: str
    condition: str
    sha256: str


@dataclass(frozen=True)
class ModelConfig:
    """A checked model configuration, with the directory it describes."""

    directory: Path
    name: str
    pipeline: str
    architecture: str
    pv_smearing: PvSmearing
    models: dict[str, ModelEntry]

    def path(self, name: str) -> Path:
        """Absolute path of a file of the configuration."""
        return self.directory / name

    def hashes(self) -> dict[str, str]:
        """``{file: sha256}`` of every file, for a run's provenance."""
        out = {entry.file: entry.sha256 for entry in self.models.values()}
        out[self.pv_smearing.file] = self.pv_smearing.sha256
        return dict(sorted(out.items()))


def stage_contract(
    pipeline: str,
) -> dict[str, tuple[frozenset[str] | tuple[str, ...], tuple[str, ...]]]:
    """Per stage: the inputs the pipeline can compute (a set: any order, or a tuple:
    exactly these) and the outputs it reads."""
    if pipeline == "lhcb":
        from . import lhcb_sql

        return {
            stage: (frozenset(lhcb_sql.STAGE_FEATURES[stage]), lhcb_sql.STAGE_OUTPUTS[stage])
            for stage in lhcb_sql.STAGE_OUTPUTS
        }
    from .modelspec import MODEL_SPECS

    return {spec.name: (spec.inputs, spec.outputs) for spec in MODEL_SPECS}


def target_architecture() -> str:
    """This machine's architecture in ELF terms (``x86_64``, ``aarch64``, ...)."""
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def demo_config(root: Path) -> dict[str, Any]:
    """The configuration a demo build's ``manifest.json`` implies."""
    import json

    from .modelspec import MANIFEST_NAME, MODEL_SPECS, PV_DB_NAME, PV_TABLE

    try:
        manifest = json.loads((root / MANIFEST_NAME).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelsError(f"{root / MANIFEST_NAME}: unreadable manifest: {exc}") from exc
    return {
        "format": CONFIG_FORMAT,
        "name": "demo",
        "pipeline": "demo",
        "architecture": target_architecture(),
        "pv_smearing": {
            "file": PV_DB_NAME,
            "table": PV_TABLE,
            "condition": "synthetic",
            "sha256": files.get(PV_DB_NAME, ""),
        },
        "models": {
            spec.name: {
                "file": spec.library,
                "function": spec.name,
                "inputs": list(spec.inputs),
                "outputs": list(spec.outputs),
                "noise": spec.n_random,
                "sha256": files.get(spec.library, ""),
            }
            for spec in MODEL_SPECS
        },
    }


def write_config(directory: Path, config: dict[str, Any]) -> None:
    """Write ``models.yaml`` (keys in the order given)."""
    import yaml

    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=100)
    (directory / CONFIG_NAME).write_text(text)


def read_config(directory: str | Path) -> dict[str, Any]:
    """Read ``models.yaml`` of ``directory`` (or the demo manifest) as a dictionary."""
    import yaml

    root = Path(directory)
    if not root.is_dir():
        raise ModelsError(
            f"models directory {root} does not exist; stage the model set there "
            f"(or build the demo set: python3 -m lamarr_job build-models --out {root})"
        )
    path = root / CONFIG_NAME
    if not path.is_file():
        from .modelspec import MANIFEST_NAME

        if (root / MANIFEST_NAME).is_file():
            return demo_config(root)
        raise ModelsError(f"models directory {root} has no {CONFIG_NAME}")
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ModelsError(f"{path}: unreadable: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelsError(f"{path}: expected a mapping")
    return raw


def _keys(where: str, value: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ModelsError(f"{where}: expected a mapping")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ModelsError(f"{where}.{unknown[0]}: unknown key; valid: {', '.join(sorted(allowed))}")
    missing = sorted(allowed - set(value) - {"license"})
    if missing:
        raise ModelsError(f"{where}: missing {', '.join(missing)}")
    return value


def _strings(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ModelsError(f"{where}: expected a list of names")
    return tuple(value)


def parse_config(directory: Path, raw: dict[str, Any], source: str) -> ModelConfig:
    """Validate the structure and the pipeline contract (no file access)."""
    top = _keys(source, raw, _TOP_KEYS)
    if top["format"] != CONFIG_FORMAT:
        raise ModelsError(
            f"{source}: format: {top['format']!r}, this payload reads {CONFIG_FORMAT}"
        )
    if top["pipeline"] not in PIPELINES:
        raise ModelsError(
            f"{source}: pipeline: {top['pipeline']!r} is not one of {', '.join(PIPELINES)}"
        )
    pv = _keys(f"{source}: pv_smearing", top["pv_smearing"], _PV_KEYS)
    contract = stage_contract(top["pipeline"])
    models_raw = top["models"]
    if not isinstance(models_raw, dict) or set(models_raw) != set(contract):
        got = sorted(models_raw) if isinstance(models_raw, dict) else models_raw
        raise ModelsError(
            f"{source}: models: the {top['pipeline']} pipeline needs exactly "
            f"{', '.join(sorted(contract))}; got {got}"
        )
    models: dict[str, ModelEntry] = {}
    for stage, (available, outputs) in contract.items():
        where = f"{source}: models.{stage}"
        entry = _keys(where, models_raw[stage], _MODEL_KEYS)
        inputs = _strings(f"{where}.inputs", entry["inputs"])
        if isinstance(available, frozenset):
            unknown = [name for name in inputs if name not in available]
            if unknown:
                raise ModelsError(
                    f"{where}.inputs: {', '.join(unknown)} not computed by the pipeline; "
                    f"available: {', '.join(sorted(available))}"
                )
        elif inputs != available:
            raise ModelsError(
                f"{where}.inputs: {list(inputs)}, this pipeline feeds {list(available)}"
            )
        declared = _strings(f"{where}.outputs", entry["outputs"])
        if declared != outputs:
            raise ModelsError(
                f"{where}.outputs: {list(declared)}, this pipeline reads {list(outputs)}"
            )
        noise = entry["noise"]
        if isinstance(noise, bool) or not isinstance(noise, int) or noise < 0:
            raise ModelsError(f"{where}.noise: expected an integer >= 0, got {noise!r}")
        models[stage] = ModelEntry(
            stage,
            str(entry["file"]),
            str(entry["function"]),
            inputs,
            outputs,
            noise,
            str(entry["sha256"]),
        )
    return ModelConfig(
        directory=directory,
        name=str(top["name"]),
        pipeline=str(top["pipeline"]),
        architecture=str(top["architecture"]),
        pv_smearing=PvSmearing(
            str(pv["file"]), str(pv["table"]), str(pv["condition"]), str(pv["sha256"])
        ),
        models=models,
    )


def load_config(directory: str | Path) -> ModelConfig:
    """The configuration of a models directory, its structure validated (no file read but
    ``models.yaml``: :func:`check_models` verifies the files)."""
    root = Path(directory)
    return parse_config(root, read_config(root), str(root / CONFIG_NAME))


def check_models(directory: str | Path, architecture: str | None = None) -> ModelConfig:
    """Load and verify a models directory; return its configuration.

    Parameters
    ----------
    directory
        The models directory (the job's ``models`` input).
    architecture
        The nodes' architecture (``x86_64``, ``aarch64``); default: this machine's.

    Raises
    ------
    ModelsError
        Naming the file and what is wrong: missing file, SHA-256 mismatch, not
        an ELF shared object, wrong class or architecture, missing function,
        or a configuration the pipeline cannot feed.
    """
    from .elf import ElfError, read_elf

    root = Path(directory)
    source = str(root / CONFIG_NAME)
    config = load_config(root)
    target = architecture or target_architecture()
    files = [(e.file, e.sha256) for e in config.models.values()]
    files.append((config.pv_smearing.file, config.pv_smearing.sha256))
    digests: dict[str, str] = {}
    for name, expected in files:  # one file may hold several models, each names its hash
        path = root / name
        if not path.is_file():
            raise ModelsError(f"{path}: missing (named in {source})")
        if name not in digests:
            digests[name] = sha256_file(path)
        actual = digests[name]
        if actual != expected:
            raise ModelsError(
                f"{path}: sha256 {actual[:16]}... differs from {source}'s {expected[:16]}..."
            )
    for entry in config.models.values():
        path = root / entry.file
        try:
            info = read_elf(path)
        except (ElfError, OSError) as exc:
            raise ModelsError(f"{path}: not a loadable shared object: {exc}") from exc
        if info.machine != target or info.bits != 64:
            raise ModelsError(
                f"{path}: built for {info.machine} ({info.bits}-bit), "
                f"the nodes run {target} (64-bit)"
            )
        if entry.function not in info.functions:
            raise ModelsError(
                f"{path}: exports no function {entry.function!r} (models.{entry.stage}.function "
                f"in {source})"
            )
    check_condition(config, config.pv_smearing.condition)
    return config


def pv_conditions(config: ModelConfig) -> tuple[str, ...]:
    """The conditions of the PV smearing table that have a row for each of X, Y and Z."""
    import sqlite3
    from contextlib import closing

    path = config.path(config.pv_smearing.file)
    table = config.pv_smearing.table.replace('"', '""')
    query = f'SELECT condition FROM "{table}" GROUP BY condition HAVING COUNT(DISTINCT coord) = 3'
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            rows = db.execute(query).fetchall()
    except sqlite3.Error as exc:
        raise ModelsError(f"{path}: table {config.pv_smearing.table}: {exc}") from exc
    return tuple(sorted(str(row[0]) for row in rows))


def check_condition(config: ModelConfig, condition: str) -> None:
    """``ModelsError`` unless the PV smearing table has ``condition`` (X, Y and Z rows)."""
    known = pv_conditions(config)
    if condition not in known:
        path = config.path(config.pv_smearing.file)
        raise ModelsError(
            f"{path}: no PV smearing condition {condition!r} in table "
            f"{config.pv_smearing.table}; it has {', '.join(known) or 'none'} "
            "(params.pv_condition, or pv_smearing.condition in models.yaml)"
        )
