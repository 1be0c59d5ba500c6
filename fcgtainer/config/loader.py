"""Strict YAML loading and the pieces every config model shares.

YAML is read with a safe loader that rejects duplicate keys; pydantic models are frozen and
closed (unknown keys are errors). Every error names the file, the key path and the fix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from fcgtainer.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """A frozen model that refuses unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


MAX_CONFIG_BYTES = 1 << 20  # a site profile or job.yaml is a few KB; refuse to parse 50 MB


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core typing that refuses duplicate and complex keys.

    YAML 1.1 (PyYAML's default) reads ``1e-4`` as a string, ``012`` as octal 10, ``24:00:00``
    as 86400 and ``on``/``no`` as booleans; YAML 1.2's core schema reads them as 0.0001, 12,
    a string and strings (and ``2024-01-01`` stays a string).
    """


# YAML 1.2 core schema: https://yaml.org/spec/1.2.2/#1032-tag-resolution
_CORE_RESOLVERS: list[tuple[str, re.Pattern[str], str]] = [
    ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    (
        "tag:yaml.org,2002:int",
        re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
        "-+0123456789",
    ),
    (
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        "-+0123456789.",
    ),
]
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag
        not in (
            "tag:yaml.org,2002:bool",
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
            "tag:yaml.org,2002:timestamp",  # a date stays the string written
        )
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _regexp, _first in _CORE_RESOLVERS:
    _UniqueKeyLoader.add_implicit_resolver(_tag, _regexp, list(_first))


def _construct_int(loader: _UniqueKeyLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _construct_float(loader: _UniqueKeyLoader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).lower()
    if text.endswith("inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    return float(text)


def _construct_bool(loader: _UniqueKeyLoader, node: yaml.ScalarNode) -> bool:
    return str(loader.construct_scalar(node)).lower() == "true"


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise ConfigError(
                f"line {key_node.start_mark.line + 1}: a key must be a plain name, not a "
                f"{'list' if isinstance(key_node, yaml.SequenceNode) else 'mapping'}",
                "write the key as a name (a `? ` complex key or `[a, b]:` is not allowed)",
            )
        key = loader.construct_object(key_node)
        if key in seen:
            raise ConfigError(
                f"line {key_node.start_mark.line + 1}: duplicate key {key!r} "
                f"(first at line {seen[key] + 1})",
                "keep one of the two entries",
            )
        seen[key] = key_node.start_mark.line
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node))


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read one YAML mapping from ``path``, strictly.

    Raises
    ------
    ConfigError
        Missing file, malformed YAML, duplicate key, or a top level that is not a mapping.
    """
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path}: {size} bytes, more than the {MAX_CONFIG_BYTES} a config file may have",
                "is this the right file? a site profile or job.yaml is a few KB",
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file", "check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}", "check the file") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}", exc.hint) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"{path}: {where}malformed YAML: {problem}", "fix the YAML syntax at that line"
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys", "see the examples")
    check_controls(data, str(path))
    return data


# NUL splits an argv element in two; other C0 controls (ESC, CR, BS...) rewrite terminals and
# logs. Tab and newline stay legal in values (descriptions, multi-line strings).
_CONTROL_IN_VALUE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CONTROL_IN_KEY = re.compile(r"[\x00-\x1f\x7f]")


def control_character(text: str, *, key: bool = False) -> str | None:
    """The first control character of ``text`` as ``U+00XX``, or None when there is none."""
    found = (_CONTROL_IN_KEY if key else _CONTROL_IN_VALUE).search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def check_controls(data: Any, source: str, path: str = "") -> None:
    """Refuse control characters in every key and string value, naming file and key."""
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            bad = control_character(str(key), key=True)
            if bad:
                raise ConfigError(
                    f"{source}: {where!r}: key contains the control character {bad}",
                    "remove it from the key",
                )
            check_controls(value, source, where)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            check_controls(value, source, f"{path}[{i}]")
    elif isinstance(data, str):
        bad = control_character(data)
        if bad:
            raise ConfigError(
                f"{source}: {path}: value contains the control character {bad}",
                "remove it (a NUL would split one argument in two); values reach the payload "
                "as data, spell special characters out",
            )


def validate(model: type[M], data: dict[str, Any], source: str) -> M:
    """Build ``model`` from ``data``; turn the first validation error into one clear line."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise config_error(model, exc, source) from None


def config_error(model: type[BaseModel], exc: ValidationError, source: str) -> ConfigError:
    """Turn a pydantic error into ``source: key.path: problem`` plus a hint."""
    err = exc.errors()[0]
    loc = [str(part) for part in err["loc"]]
    key = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        valid = ", ".join(sorted(_fields_at(model, loc[:-1])))
        return ConfigError(f"{source}: {key}: unknown key", f"valid keys here: {valid}")
    if err["type"] == "missing":
        return ConfigError(f"{source}: {key}: required key is missing", f"add `{loc[-1]}:`")
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
    return ConfigError(f"{source}: {key}: {msg}{shown}", _type_hint(err["type"]))


def _type_hint(kind: str) -> str:
    hints = {
        "int_parsing": "give a whole number",
        "int_type": "give a whole number",
        "bool_parsing": "give true or false",
        "string_type": "give a string",
        "list_type": "give a list, e.g. [a, b]",
        "dict_type": "give a mapping of keys",
        "literal_error": "use one of the allowed values",
        "enum": "use one of the allowed values",
        "greater_than_equal": "give a larger number",
    }
    return hints.get(kind, "see the example profiles in sites/ and jobs/")


def _fields_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    """The field names of the sub-model found at ``loc`` (best effort)."""
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            # a dict-of-models level (e.g. cvmfs.repositories.<name>): skip the key
            inner = _inner_model(current)
            if inner is None:
                return []
            current = inner
            continue
        current = _inner_model(fields[part].annotation) or fields[part].annotation
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _inner_model(annotation: Any) -> Any:
    """Find a BaseModel class inside an annotation such as ``dict[str, X] | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*$", re.IGNORECASE)


def parse_memory_mb(value: object) -> int:
    """Parse ``2GiB``, ``7GB``, ``500M`` or a number of MB into whole MiB."""
    if isinstance(value, bool):
        raise ValueError("memory must be a size such as 2GiB or 500MB")
    if isinstance(value, int | float):
        if value <= 0:
            raise ValueError("memory must be positive")
        return max(1, round(value))
    match = _MEMORY.match(str(value))
    if not match:
        raise ValueError("memory must be a size such as 2GiB or 500MB")
    number, unit = float(match.group(1)), match.group(2).upper()
    if number <= 0:
        raise ValueError("memory must be positive")
    scale = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}[unit]
    return max(1, round(number * scale))


_WALLTIME = re.compile(r"^(?:(\d+)-)?(\d+):(\d{1,2})(?::(\d{1,2}))?$")


def parse_walltime_s(value: object) -> int:
    """Parse ``HH:MM:SS``, ``D-HH:MM:SS``, ``HH:MM`` or a number of seconds into seconds.

    A bare number is seconds; an unquoted ``24:00:00`` is a string under YAML 1.2.
    """
    if isinstance(value, bool):
        raise ValueError("walltime must look like 24:00:00 or 1-00:00:00")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("walltime must be positive")
        return value
    match = _WALLTIME.match(str(value).strip())
    if not match:
        raise ValueError("walltime must look like 24:00:00 or 1-00:00:00")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise ValueError("walltime must be positive")
    return total


def format_walltime(seconds: int) -> str:
    """Seconds as ``HH:MM:SS`` (hours may exceed 24), the form SLURM and HTCondor take."""
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_name(value: str) -> str:
    """A job or site name: a name, never a path (it names the run directory)."""
    if not _NAME.match(value) or value in (".", ".."):
        raise ValueError(
            f"{value!r} is not a name: use letters, digits, '.', '_' and '-' (at most 64, "
            "not starting with '.' or '-'); a name is never a path"
        )
    return value


class Resources(Strict):
    """What one task asks for."""

    cpus: int = 1
    memory: int = 2048
    gpus: int = 0
    walltime: int = 3600

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: object) -> int:
        return parse_memory_mb(value)

    @field_validator("walltime", mode="before")
    @classmethod
    def _walltime(cls, value: object) -> int:
        return parse_walltime_s(value)

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, value: int) -> int:
        if value < 1:
            raise ValueError("cpus must be 1 or more")
        return value

    @field_validator("gpus")
    @classmethod
    def _gpus(cls, value: int) -> int:
        if value < 0:
            raise ValueError("gpus must be zero or more")
        return value


_BAD_BIND = re.compile(r"[,:\x00-\x1f]")


def check_bind_path(path: str) -> str:
    """Canonicalise a host or container path for ``--bind``; refuse ``,`` and ``:``."""
    if _BAD_BIND.search(path):
        raise ValueError(
            f"path {path!r} contains ',' or ':' (apptainer --bind would split it); "
            "rename or symlink the directory"
        )
    if not path.startswith("/") and not path.startswith("{") and not path.startswith("~"):
        raise ValueError(f"path {path!r} must be absolute")
    return path


class Bind(Strict):
    """One bind mount: host ``source`` to container ``target``."""

    source: str
    target: str | None = None
    readonly: bool = True

    @field_validator("source", "target")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else check_bind_path(value)
