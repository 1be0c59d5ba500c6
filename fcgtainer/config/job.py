"""Job definitions (``jobs/<name>/job.yaml``) and their expansion into tasks (pure)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from fcgtainer.config.loader import (
    Bind,
    Resources,
    Strict,
    check_name,
    control_character,
    read_yaml,
    validate,
)
from fcgtainer.errors import ConfigError, NotFoundError
from fcgtainer.paths import search_path

Scalar = str | int | float | bool
PLACEHOLDERS = ("spec", "out", "task", "run", "job_dir")
CHECK_PLACEHOLDERS = ("specs",)  # a job's check: the JSON-lines file of every task's spec
MAX_AXIS = 10_000_000  # values on one axis, checked before any list is made


class Range(Strict):
    """``{range: [start, stop]}`` or ``[start, stop, step]``: stop is exclusive."""

    range: tuple[int, int] | tuple[int, int, int]

    @model_validator(mode="after")
    def _size(self) -> Range:
        if self.range[-1] == 0 and len(self.range) == 3:
            raise ValueError("the step of a range cannot be 0")
        if len(range(*self.range)) > MAX_AXIS:
            raise ValueError(f"a range of more than {MAX_AXIS:,} values is surely a typo")
        return self

    def values(self) -> list[int]:
        """The integers of the range."""
        return list(range(*self.range))


IntTuple = tuple[int, ...]


class RunNumbers(Strict):
    """A set of run numbers: ``first..last`` and/or a list, minus the banned ones."""

    first: int | None = None
    last: int | None = None
    numbers: IntTuple = Field(default=(), alias="list")
    banned: IntTuple = ()

    @model_validator(mode="after")
    def _bounds(self) -> RunNumbers:
        if (self.first is None) != (self.last is None):
            raise ValueError("give both first and last, or neither")
        if self.first is not None and self.last is not None and self.last < self.first:
            raise ValueError("last must not be smaller than first")
        if self.first is not None and self.last is not None and self.last - self.first >= MAX_AXIS:
            raise ValueError(f"more than {MAX_AXIS:,} run numbers is surely a typo")
        return self

    def values(self) -> list[int]:
        """The run numbers, sorted, without duplicates and banned ones."""
        numbers = set(self.numbers)
        if self.first is not None and self.last is not None:
            numbers.update(range(self.first, self.last + 1))
        return sorted(numbers - set(self.banned))


class Input(Strict):
    """A named input directory (data, models) that must exist before submission.

    ``check`` is a command run on the submit host before anything is queued (the
    job's own check of the input's content, e.g. model checksums): ``{path}`` is the
    input's location, ``python3`` the CLI's own interpreter, the job directory the
    working directory. A non-zero exit stops the submit with the command's message.
    """

    default: str | None = None
    required: bool = True
    check: tuple[str, ...] = ()


class Checkpoint(Strict):
    """Whether the payload checkpoints on a signal and wants to be requeued."""

    enabled: bool = False
    signal_margin: int = Field(default=300, ge=10)


class Requires(Strict):
    """What the payload needs from its image: version ranges, and why some images do not fit."""

    python: str | None = None
    tensorflow: str | None = None
    note: str = ""

    @field_validator("python", "tensorflow")
    @classmethod
    def _range(cls, spec: str | None) -> str | None:
        from fcgtainer.versions import check_spec

        return None if spec is None else check_spec(spec)


Dependency = Literal["per_task", "all"]
# what a step may set: the keys of a job that describe its tasks (a step inherits the job's)
STEP_KEYS = (
    "command",
    "params",
    "matrix",
    "runs",
    "inputs",
    "resources",
    "gpu_resources",
    "binds",
    "cvmfs",
    "lcg_view",
    "checkpoint",
    "retries",
    "max_requeues",
    "bundle",
    "check",
)


class Step(Strict):
    """One step of a campaign: what a job is (command, matrix, resources...) plus ``needs``.

    Keys left out are the job's. ``needs`` maps earlier steps to how this step waits for
    them: ``per_task`` (task i waits for task i of that step: same number of tasks) or
    ``all`` (every task waits for the whole step). ``on_upstream_failure`` says what a task
    does when a task it reads did not succeed: ``report`` it (the task ends "upstream
    failed", naming that task) or ``wait`` (it ends "waiting on upstream", not failed, and
    runs when that task is rerun).
    """

    needs: dict[str, Dependency] = Field(default_factory=dict)
    on_upstream_failure: Literal["report", "wait"] = "report"
    command: tuple[str, ...] = ()
    params: dict[str, Scalar | list[Scalar] | None] = Field(default_factory=dict)
    matrix: dict[str, list[Scalar] | Range] = Field(default_factory=dict)
    runs: RunNumbers | None = None
    inputs: dict[str, Input] = Field(default_factory=dict)
    resources: Resources = Resources()
    gpu_resources: Resources | None = None
    binds: tuple[Bind, ...] = ()
    cvmfs: tuple[str, ...] = ()
    lcg_view: str | None = None
    checkpoint: Checkpoint = Checkpoint()
    retries: int = Field(default=0, ge=0, le=20)
    max_requeues: int = Field(default=20, ge=0, le=10_000)
    bundle: int | None = Field(default=None, ge=1, le=10_000)
    check: tuple[str, ...] = ()

    @field_validator("command")
    @classmethod
    def _command(cls, argv: tuple[str, ...]) -> tuple[str, ...]:
        check_command(argv)
        return argv

    @field_validator("check")
    @classmethod
    def _check(cls, argv: tuple[str, ...]) -> tuple[str, ...]:
        check_check_command(argv)
        return argv


class Job(Strict):
    """A job definition as loaded from ``jobs/<name>/job.yaml``."""

    name: str
    description: str = ""
    image: str | None = None
    images: tuple[str, ...] = ()  # the image recipes the payload runs in (empty: any)
    requires: Requires = Requires()
    command: tuple[str, ...] = ()
    params: dict[str, Scalar | list[Scalar] | None] = Field(default_factory=dict)
    matrix: dict[str, list[Scalar] | Range] = Field(default_factory=dict)
    runs: RunNumbers | None = None
    inputs: dict[str, Input] = Field(default_factory=dict)
    resources: Resources = Resources()
    gpu_resources: Resources | None = None
    binds: tuple[Bind, ...] = ()
    cvmfs: tuple[str, ...] = ()
    lcg_view: str | None = None
    checkpoint: Checkpoint = Checkpoint()
    retries: int = Field(default=0, ge=0, le=20)
    max_requeues: int = Field(default=20, ge=0, le=10_000)
    # tasks per scheduler job (None: the site's ``bundle``); short tasks share the job's start
    bundle: int | None = Field(default=None, ge=1, le=10_000)
    # run on the submit host before anything is queued (and by --dry-run): {specs} is a
    # JSON-lines file of every task's spec; a step inherits it unless it sets its own
    check: tuple[str, ...] = ()
    steps: dict[str, Step] = Field(default_factory=dict)
    job_dir: str = Field(default=".", exclude=True)
    source: str = Field(default="(built in)", exclude=True)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("command")
    @classmethod
    def _command(cls, argv: tuple[str, ...]) -> tuple[str, ...]:
        check_command(argv)
        return argv

    @field_validator("check")
    @classmethod
    def _check(cls, argv: tuple[str, ...]) -> tuple[str, ...]:
        check_check_command(argv)
        return argv

    @model_validator(mode="after")
    def _axes(self) -> Job:
        if not self.command and not self.steps:
            raise ValueError("command must be a non-empty list (an argv, not a shell string)")
        if self.runs is not None and "run" in self.matrix:
            raise ValueError("use either runs: or a matrix axis named run, not both")
        clash = set(self.matrix) & set(self.params)
        if clash:
            raise ValueError(f"{sorted(clash)[0]!r} is both a matrix axis and a param")
        earlier: list[str] = []
        for name, step in self.steps.items():
            check_name(name)
            for needed in step.needs:
                if needed not in earlier:
                    raise ValueError(
                        f"steps.{name}.needs: {needed!r} is not an earlier step "
                        f"(earlier: {', '.join(earlier) or 'none'})"
                    )
            if not step.command and not self.command:
                raise ValueError(f"steps.{name}: no command (give one here or for the job)")
            earlier.append(name)
        return self

    def step_jobs(self) -> dict[str, Job]:
        """Each step as a job of its own (the job's keys, overridden by the step's).

        A job without ``steps:`` is the one-step campaign ``{name: job}``.
        """
        if not self.steps:
            return {self.name: self}
        out: dict[str, Job] = {}
        for name, step in self.steps.items():
            update: dict[str, Any] = {"steps": {}}
            for key in STEP_KEYS:
                if key in step.model_fields_set:
                    update[key] = getattr(step, key)
            if "params" in update:
                update["params"] = {**self.params, **update["params"]}
            job = self.model_copy(update=update)
            data = job.model_dump(by_alias=True)
            out[name] = validate(Job, data, f"{self.source}: steps.{name}").model_copy(
                update={"job_dir": self.job_dir, "source": self.source}
            )
        return out

    def axes(self) -> dict[str, list[Scalar]]:
        """Every matrix axis with its values, run numbers last as axis ``run``."""
        out: dict[str, list[Scalar]] = {
            key: (list(v.values()) if isinstance(v, Range) else list(v))
            for key, v in self.matrix.items()
        }
        if self.runs is not None:
            out["run"] = list(self.runs.values())
        return out

    def resources_for(self, site_gpus: int) -> Resources:
        """The per-task resources on a site with ``site_gpus`` GPUs per node."""
        if site_gpus > 0 and self.gpu_resources is not None:
            return self.gpu_resources
        return self.resources


def check_command(argv: Sequence[str]) -> None:
    """An argv (placeholders known, no parameter in code), or empty for a campaign."""
    if argv:
        check_no_code_params(argv)
        _check_placeholders(argv, PLACEHOLDERS, params=True)


def check_check_command(argv: Sequence[str]) -> None:
    """A job's ``check``: an argv whose only placeholder is ``{specs}``."""
    _check_placeholders(argv, CHECK_PLACEHOLDERS, params=False)


def _check_placeholders(argv: Sequence[str], known: Sequence[str], *, params: bool) -> None:
    """Every ``{NAME}`` of ``argv`` is in ``known`` (or, with ``params``, ``{param.X}``)."""
    for arg in argv:
        for name in re.findall(r"\{([^{}]*)\}", arg):
            if name not in known and not (params and name.startswith("param.")):
                listed = ", ".join(f"{{{p}}}" for p in known) + (", {param.NAME}" if params else "")
                raise ValueError(f"unknown placeholder {{{name}}}; known: {listed}")


# Interpreters that run their -c / -e argument as code: a parameter spliced into that
# argument would be executed, not passed.
_CODE_FLAGS = {
    "sh": "c",
    "bash": "c",
    "dash": "c",
    "zsh": "c",
    "ksh": "c",
    "python": "c",
    "python3": "c",
    "perl": "e",
    "ruby": "e",
    "node": "e",
}


def check_no_code_params(argv: Sequence[str]) -> None:
    """Refuse ``[sh, -c, "... {param.x} ..."]``: a parameter value would be executed."""
    words = list(argv)
    if words and Path(words[0]).name == "env":  # env [-i] [NAME=VALUE...] PROGRAM ...
        start = 1
        while start < len(words) and (words[start].startswith("-") or "=" in words[start]):
            start += 1
        words = words[start:]
    if not words:
        return
    program = Path(words[0]).name
    letter = _CODE_FLAGS.get(program) or _CODE_FLAGS.get(re.sub(r"[\d.]+$", "", program))
    if letter is None:
        return
    for i, word in enumerate(words[1:], start=1):
        if re.fullmatch(rf"-[A-Za-z]*{letter}[A-Za-z]*", word) and i + 1 < len(words):
            script = words[i + 1]
            if "{param." in script:
                raise ValueError(
                    f"{{param...}} inside the `{program} {word}` code argument would be run as "
                    f"code, not passed as data: pass it as a separate argument, e.g. "
                    f"[{program}, {word}, '... \"$1\" ...', {program}, '{{param.NAME}}'], or read "
                    "it from the spec file ({spec})"
                )
            return


@dataclass(frozen=True)
class TaskParams:
    """One element of the parameter matrix."""

    index: int
    values: Mapping[str, Scalar]

    @property
    def name(self) -> str:
        """A readable, stable name such as ``particle=photon,eta_slice=17``."""
        return ",".join(f"{k}={v}" for k, v in self.values.items()) or "task"


def expand(axes: Mapping[str, Sequence[Scalar]]) -> Iterator[TaskParams]:
    """The product of the axes, in the order written, as numbered tasks."""
    keys = list(axes)
    for index, combo in enumerate(itertools.product(*(axes[k] for k in keys))):
        yield TaskParams(index, dict(zip(keys, combo, strict=True)))


def job_dirs() -> list[Path]:
    """Directories searched for ``<name>/job.yaml``, first match wins (:mod:`fcgtainer.paths`)."""
    return [d.path for d in search_path("jobs")]


def available_jobs() -> dict[str, Path]:
    """Every job definition found, by name."""
    found: dict[str, Path] = {}
    for directory in job_dirs():
        for path in sorted(directory.glob("*/job.yaml")):
            found.setdefault(path.parent.name, path)
    return found


def load_job(name_or_path: str) -> Job:
    """Load a job by name, by directory, or by path to its ``job.yaml``."""
    path = Path(name_or_path)
    if path.is_dir() and (path / "job.yaml").is_file():
        path = path / "job.yaml"
    if name_or_path.endswith((".yaml", ".yml")) or path.is_file():
        return load_job_file(path)
    jobs = available_jobs()
    if name_or_path in jobs:
        return load_job_file(jobs[name_or_path])
    known = ", ".join(sorted(jobs)) or "none"
    raise NotFoundError(
        f"job {name_or_path!r}: no such job", f"known jobs: {known}; or give a path to job.yaml"
    )


def load_job_file(path: Path) -> Job:
    """Load and validate one ``job.yaml``."""
    data = read_yaml(path)
    for reserved in ("job_dir", "source"):
        if reserved in data:
            raise ConfigError(f"{path}: {reserved}: unknown key", "remove it")
    data.setdefault("name", path.parent.name if path.name == "job.yaml" else path.stem)
    job = validate(Job, data, str(path))
    return job.model_copy(update={"job_dir": str(path.parent.resolve()), "source": str(path)})


# --- overrides -------------------------------------------------------------------------

_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")
_SPAN = re.compile(r"^(-?\d+)\.\.(-?\d+)(?::(\d+))?$")


def parse_scalar(text: str) -> Scalar:
    """A ``--set`` value as data: int, float, bool, or the string unchanged."""
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if text in ("true", "false"):
        return text == "true"
    return text


NULLS = ("null", "~")


def parse_param(text: str) -> Scalar | None:
    """A ``--set`` value of a param or resource: ``null`` (or ``~``) unsets it, as in YAML."""
    return None if text in NULLS else parse_scalar(text)


def _parse_values(text: str) -> list[Scalar]:
    """``a,b``, ``20..24`` (inclusive), ``0..90:10`` (with a step) or a single value."""
    values: list[Scalar] = []
    for part in text.split(","):
        span = _SPAN.match(part.strip())
        if span:
            lo, hi, step = int(span.group(1)), int(span.group(2)), int(span.group(3) or 1)
            if lo > hi or step == 0:
                raise ConfigError(
                    f"--set: {part.strip()} is an empty range",
                    f"write it from low to high with a step of at least 1: {min(lo, hi)}.."
                    f"{max(lo, hi)}" + (f":{step}" if step > 1 else ""),
                )
            if len(range(lo, hi + 1, step)) > MAX_AXIS:
                raise ConfigError(
                    f"--set: {part.strip()} has more than {MAX_AXIS:,} values",
                    "check the bounds (a typo?)",
                )
            values.extend(range(lo, hi + 1, step))
        else:
            values.append(parse_scalar(part))
    return values


def parse_sets(items: Sequence[str]) -> dict[str, str]:
    """``["k=v", ...]`` into a dict; the value keeps every character after the first ``=``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value", "e.g. --set iterations=500")
        bad = control_character(key, key=True) or control_character(value)
        if bad:
            raise ConfigError(
                f"--set {key.strip()!r}: contains the control character {bad}",
                "remove it (a NUL would split one argument in two)",
            )
        out[key.strip()] = value
    return out


def apply_overrides(job: Job, sets: Mapping[str, str]) -> tuple[Job, dict[str, list[Scalar]]]:
    """Apply ``--set`` overrides: params, matrix subsets, run numbers, resources.

    Returns the updated job and its axes. A matrix axis may only be narrowed to values it
    has; ``runs`` may be replaced (``runs=1..4``) and still honours ``banned``.
    """
    params = dict(job.params)
    axes = job.axes()
    runs = job.runs
    resources = job.resources.model_dump()
    for key, raw in sets.items():
        where = f"--set {key}"
        if key in ("runs", "run") and "run" in axes:
            banned = set(runs.banned) if runs else set()
            axes["run"] = sorted(set(_run_numbers(raw, where)) - banned)
        elif key == "runs.banned" and "run" in axes:
            banned = set(_run_numbers(raw, where))
            axes["run"] = [r for r in axes["run"] if r not in banned]
        elif key in axes:
            wanted_values = _parse_values(raw)
            allowed = axes[key]
            missing = [v for v in wanted_values if v not in allowed]
            if missing:
                shown = _short(allowed)
                raise ConfigError(
                    f"{where}: {missing[0]!r} is not a value of matrix axis {key!r}",
                    f"choose among {shown}",
                )
            axes[key] = [v for v in allowed if v in wanted_values]
        elif key.startswith("resources."):
            field = key.removeprefix("resources.")
            if field not in resources:
                raise ConfigError(
                    f"{where}: unknown resource", f"valid: {', '.join(sorted(resources))}"
                )
            resources[field] = parse_param(raw)
        elif key in params:
            params[key] = parse_param(raw)
        else:
            valid = sorted([*params, *axes, *(f"resources.{r}" for r in resources)])
            raise ConfigError(
                f"{where}: {job.source}: no param, matrix axis or resource named {key!r}",
                f"valid keys: {', '.join(valid)}",
            )
    new_resources = validate(Resources, resources, "--set resources")
    update: dict[str, Any] = {"params": params, "resources": new_resources}
    if job.gpu_resources is not None:
        changed = {k: v for k, v in resources.items() if v != job.resources.model_dump()[k]}
        gpu = job.gpu_resources.model_dump() | changed
        update["gpu_resources"] = validate(Resources, gpu, "--set resources")
    updated = job.model_copy(update=update)
    for key, values in axes.items():
        if not values:
            raise ConfigError(
                f"{job.source}: {key}: no value left after the overrides",
                "choose values that are not banned",
            )
    return updated, axes


def _run_numbers(raw: str, where: str) -> list[int]:
    """Run numbers from ``1..4``, ``1,5,9`` or a mix."""
    values = _parse_values(raw)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"{where}: run numbers must be integers", "e.g. runs=1..4 or runs=1,5,9")
    return [int(v) for v in values]


def _short(values: Sequence[Any]) -> str:
    if len(values) > 8:
        return f"{values[0]!r} ... {values[-1]!r} ({len(values)} values)"
    return ", ".join(repr(v) for v in values)
