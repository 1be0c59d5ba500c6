"""Read the task spec (fcgtainer payload contract) into a typed run configuration.

Parameters are flat so that each can be overridden with ``--set key=value``.
Unknown keys are errors naming the valid ones. Plain Python (numpy only for the seeds):
``check`` validates every task's spec with it on the submit host.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .chain import CUTS, parse_chain
from .errors import ConfigError
from .modelconfig import check_condition, load_config
from .settings import GUN_MASSES_GEV, PYTHIA_PROCESSES, GunSettings, PythiaSettings

#: Every parameter the payload understands, with its default.
DEFAULTS: dict[str, Any] = {
    "run": None,
    "events": 1000,
    "batch_size": 500,
    "event_type": "particle-gun",
    "generator": "gun",
    "gun_species": [211, 321, 2212, 13, 11],
    "gun_p_min": 2.0,
    "gun_p_max": 200.0,
    "gun_eta_min": 1.8,
    "gun_eta_max": 5.2,
    "gun_particles": 10,
    "pythia_process": "minbias",
    "pythia_ecm": 13600.0,
    "pythia_settings": [],
    "pythia_keep_partons": False,
    "pythia_signal": "",
    "pythia_signal_cut": "daughters-in-lhcb",
    "pv_condition": None,
    "output_format": "root",
    "seed_salt": 0,
    "banned_runs": [],
    "keep_hepmc": False,
    "hepmc_path": "",
}
GENERATORS = ("gun", "pythia", "hepmc")
OUTPUT_FORMATS = ("root",)
PYTHIA_SEED_MAX = 900_000_000


@dataclass(frozen=True)
class RunConfig:
    """Everything one task needs, validated."""

    run: int
    events: int
    batch_size: int
    event_type: str
    generator: str
    gun: GunSettings
    pythia: PythiaSettings
    pv_condition: str | None
    output_format: str
    seed_salt: int
    banned_runs: tuple[int, ...]
    keep_hepmc: bool
    out_dir: Path
    models: Path
    scratch: Path | None
    hepmc: Path | None = None

    def seeds(self) -> dict[str, int]:
        """Seeds of every random stream, derived from the run number (and salt)."""
        import numpy as np  # on the node only: the submit host's check has no numpy

        words = np.random.SeedSequence([self.run, self.seed_salt]).generate_state(3)
        return {
            "generator": int(words[0] % 2**31),
            "pythia": int(words[1] % PYTHIA_SEED_MAX) + 1,
            "sqlamarr": int(words[2] % 2**31),
        }

    def settings(self) -> dict[str, Any]:
        """Generator and pipeline settings, for the run's provenance record."""
        generator: dict[str, Any]
        if self.generator == "gun":
            generator = {"kind": "gun", **self.gun.__dict__, "species": list(self.gun.species)}
        elif self.generator == "hepmc":
            generator = {"kind": "hepmc", "path": str(self.hepmc)}
        else:
            generator = {
                "kind": "pythia",
                "process": self.pythia.process,
                "ecm": self.pythia.ecm,
                "keep_partons": self.pythia.keep_partons,
                "signal": [[d.mother, *d.daughters] for d in self.pythia.signal],
                "signal_cut": self.pythia.signal_cut,
                "lines": self.pythia.lines(self.seeds()["pythia"]),
            }
        return {
            "event_type": self.event_type,
            "events": self.events,
            "batch_size": self.batch_size,
            "generator": generator,
            "pv_condition": self.pv_condition,
        }


def _int(params: dict[str, Any], key: str, minimum: int) -> int:
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"params.{key}: expected an integer >= {minimum}, got {value!r}")
    return value


def _float(params: dict[str, Any], key: str) -> float:
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"params.{key}: expected a number, got {value!r}")
    return float(value)


def _int_list(params: dict[str, Any], key: str) -> tuple[int, ...]:
    value = params[key]
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]  # ``--set gun_species=321`` arrives as a scalar
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise ConfigError(f"params.{key}: expected a list of integers, got {value!r}")
    return tuple(value)


def _choice(params: dict[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = params[key]
    if value not in choices:
        raise ConfigError(f"params.{key}: {value!r} is not one of {', '.join(choices)}")
    return str(value)


def parse_params(params: dict[str, Any]) -> dict[str, Any]:
    """Merge defaults with ``params`` and reject unknown keys."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ConfigError(
            f"params: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(DEFAULTS))}"
        )
    merged = {**DEFAULTS, **params}
    if merged["run"] is None:
        raise ConfigError("params.run: missing run number (one task per run number)")
    return merged


def config_from_spec(spec: dict[str, Any]) -> RunConfig:
    """Validate a spec dictionary and return the run configuration.

    Raises
    ------
    ConfigError
        Naming the offending key.
    """
    if not isinstance(spec, dict):
        raise ConfigError("spec: expected a JSON object")
    for key in ("params", "out_dir"):
        if key not in spec:
            raise ConfigError(f"spec: missing {key!r}")
    params = spec["params"]
    if not isinstance(params, dict):
        raise ConfigError("spec.params: expected an object")
    p = parse_params(params)
    models = (spec.get("inputs") or {}).get("models")
    if not isinstance(models, str) or not models:
        raise ConfigError("spec.inputs.models: missing models directory")
    species = _int_list(p, "gun_species")
    bad = [s for s in species if abs(s) not in GUN_MASSES_GEV]
    if not species or bad:
        raise ConfigError(
            f"params.gun_species: {bad or 'empty'}; known species {sorted(GUN_MASSES_GEV)}"
        )
    gun = GunSettings(
        species=tuple(abs(s) for s in species),
        p_min=_float(p, "gun_p_min"),
        p_max=_float(p, "gun_p_max"),
        eta_min=_float(p, "gun_eta_min"),
        eta_max=_float(p, "gun_eta_max"),
        particles=_int(p, "gun_particles", 1),
    )
    if not 0 < gun.p_min < gun.p_max or not gun.eta_min < gun.eta_max:
        raise ConfigError("params.gun_*: need 0 < gun_p_min < gun_p_max, gun_eta_min < gun_eta_max")
    settings = p["pythia_settings"]
    if isinstance(settings, str):
        settings = [settings]  # one line from ``--set pythia_settings=...``
    if not isinstance(settings, list) or not all(isinstance(s, str) for s in settings):
        raise ConfigError("params.pythia_settings: expected a list of strings")
    if any("Random:" in s for s in settings):
        raise ConfigError("params.pythia_settings: seeds come from the run number, not Random:*")
    pythia = PythiaSettings(
        process=_choice(p, "pythia_process", tuple(PYTHIA_PROCESSES)),
        ecm=_float(p, "pythia_ecm"),
        settings=tuple(settings),
        keep_partons=bool(p["pythia_keep_partons"]),
        signal=parse_chain(str(p["pythia_signal"])) if p["pythia_signal"] else (),
        signal_cut=_choice(p, "pythia_signal_cut", CUTS),
    )
    scratch = spec.get("scratch")
    generator = _choice(p, "generator", GENERATORS)
    run = _int(p, "run", 0)
    hepmc = None
    if generator == "hepmc":
        base = (spec.get("inputs") or {}).get("hepmc")
        if not isinstance(base, str) or not base:
            raise ConfigError(
                "spec.inputs.hepmc: generator hepmc needs the staged HepMC input "
                "(job_inputs.lamarr.hepmc in the site profile)"
            )
        relative = str(p["hepmc_path"]).format(run=run)
        hepmc = Path(base) / relative if relative else Path(base)
    return RunConfig(
        run=run,
        events=_int(p, "events", 1),
        batch_size=_int(p, "batch_size", 1),
        event_type=str(p["event_type"]),
        generator=generator,
        gun=gun,
        pythia=pythia,
        pv_condition=None if p["pv_condition"] is None else str(p["pv_condition"]),
        output_format=_choice(p, "output_format", OUTPUT_FORMATS),
        seed_salt=_int(p, "seed_salt", 0),
        banned_runs=_int_list(p, "banned_runs"),
        keep_hepmc=bool(p["keep_hepmc"]),
        out_dir=Path(spec["out_dir"]),
        models=Path(models),
        scratch=Path(scratch) if scratch else None,
        hepmc=hepmc,
    )


def check_specs(path: Path) -> tuple[int, dict[str, list[str]]]:
    """``check --specs FILE`` (job.yaml's ``check``, run by ``fcgtainer submit``): every
    generate spec of a JSON-lines file validated as its task validates it when it starts,
    without numpy, pyhepmc or SQLamarr, plus what the submit host can see of the inputs: each
    run's HepMC file or directory, and a ``pv_condition`` in the models' PV smearing table.
    Returns the number of specs and each problem with the tasks it affects, in the order
    found.
    """
    problems: dict[str, list[str]] = {}
    conditions: dict[tuple[Path, str], str] = {}  # checked once per models directory
    n = 0
    try:
        lines = path.open()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the specs: {exc}") from exc
    with lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            n += 1
            try:
                spec = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{path}:{number}: not a JSON spec: {exc}") from exc
            problem = _spec_problem(spec, conditions)
            if problem:
                task = f"task {spec.get('task')} ({spec.get('task_name')})"
                problems.setdefault(problem, []).append(task)
    return n, problems


def _spec_problem(spec: Any, conditions: dict[tuple[Path, str], str]) -> str:
    """What is wrong with one spec of :func:`check_specs` ("" if nothing)."""
    try:
        config = config_from_spec(spec)
    except ConfigError as exc:
        return str(exc)
    if config.run in config.banned_runs:
        return ""  # the task writes that it is banned and nothing else
    if config.hepmc is not None and not config.hepmc.exists():
        return (
            f"params.hepmc_path {spec['params'].get('hepmc_path', '')!r}: no file or "
            f"directory for the run under the input hepmc ({spec['inputs']['hepmc']})"
        )
    if config.pv_condition is None:
        return ""
    key = (config.models, config.pv_condition)
    if key not in conditions:
        try:
            check_condition(load_config(config.models), config.pv_condition)
            conditions[key] = ""
        except ConfigError as exc:
            conditions[key] = str(exc)
    return conditions[key]


def read_spec(path: str | Path) -> dict[str, Any]:
    """Read ``spec.json`` as a JSON object; ``ConfigError`` naming the file otherwise."""
    try:
        spec = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read spec: {exc}") from exc
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: expected a JSON object (the task spec)")
    return spec


def load_spec(path: str | Path) -> RunConfig:
    """Read ``spec.json`` and return the run configuration."""
    return config_from_spec(read_spec(path))


def spec_out_dir(spec: dict[str, Any], path: str | Path) -> Path:
    """The task's output directory (``out_dir`` of the spec at ``path``)."""
    out_dir = spec.get("out_dir")
    if not isinstance(out_dir, str) or not out_dir:
        raise ConfigError(f"{path}: out_dir: missing (the task's output directory)")
    return Path(out_dir)


def upstream_dirs(spec: dict[str, Any], path: str | Path, step: str) -> list[Path]:
    """Output directories of the upstream tasks of ``step`` (``upstream.STEP[*].out_dir``).

    A campaign task reads these (payload contract); ``ConfigError`` names the spec file
    and the key when the spec does not list them.
    """
    upstream = spec.get("upstream")
    if not isinstance(upstream, dict) or step not in upstream:
        raise ConfigError(
            f"{path}: upstream.{step}: missing; this step reads the outputs of the {step!r} "
            f"step (job.yaml: needs: {{{step}: all}})"
        )
    tasks = upstream[step]
    if not isinstance(tasks, list) or not tasks:
        raise ConfigError(f"{path}: upstream.{step}: expected a non-empty list of tasks")
    dirs: list[Path] = []
    for i, task in enumerate(tasks):
        out_dir = task.get("out_dir") if isinstance(task, dict) else None
        if not isinstance(out_dir, str) or not out_dir:
            raise ConfigError(f"{path}: upstream.{step}[{i}].out_dir: missing")
        dirs.append(Path(out_dir))
    return dirs
