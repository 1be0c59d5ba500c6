"""Version ranges (``>=3.9``, ``>=2.12,<3``) and the payload's start-up check (stdlib only).

This module imports nothing but the standard library and never TensorFlow, so a payload can
carry a copy and call :func:`require` first thing, before importing TensorFlow::

    from fastcalogan.versions import found, require   # a copy of this file
    require({"python": ">=3.9", "tensorflow": ">=2.12"}, found())

fcgtainer itself uses :func:`satisfies` to compare a job's ``requires`` with what an image's
LCG view carries.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Mapping
from importlib import metadata

_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*([0-9]+(?:\.[0-9]+)*)(?:\.\*)?\s*$")


def parse_version(text: str) -> tuple[int, ...]:
    """The leading numeric release of a version string (``2.12.0rc1`` -> ``(2, 12, 0)``)."""
    match = re.match(r"\s*v?([0-9]+(?:\.[0-9]+)*)", text)
    if match is None:
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(part) for part in match.group(1).split("."))


def check_spec(spec: str) -> str:
    """``spec`` unchanged when every comma-separated clause is ``OP VERSION``; else ValueError."""
    for clause in spec.split(","):
        if _CLAUSE.match(clause) is None:
            raise ValueError(
                f"{spec!r}: expected clauses like '>=3.9' or '>=2.12,<3' (ops: >= > <= < == !=)"
            )
    return spec


def satisfies(version: str, spec: str) -> bool:
    """Whether ``version`` lies in the range ``spec`` (``==2.12`` matches ``2.12.1``)."""
    have = parse_version(version)
    for clause in check_spec(spec).split(","):
        match = _CLAUSE.match(clause)
        assert match is not None
        op, want = match.group(1) or "==", parse_version(match.group(2))
        width = max(len(have), len(want))
        a = have + (0,) * (width - len(have))
        b = want + (0,) * (width - len(want))
        if op == "==" or op == "!=":
            same = have[: len(want)] == want
            if same != (op == "=="):
                return False
        elif not {">=": a >= b, ">": a > b, "<=": a <= b, "<": a < b}[op]:
            return False
    return True


def unmet(requires: Mapping[str, str], found: Mapping[str, str | None]) -> list[str]:
    """One sentence per requirement the found versions do not meet (unknown ones are skipped)."""
    problems = []
    for name, spec in requires.items():
        version = found.get(name)
        if version is not None and not satisfies(version, spec):
            problems.append(f"{name} {version} found, {spec} needed")
    return problems


def found() -> dict[str, str | None]:
    """This interpreter's Python and installed TensorFlow (None if absent), without importing it."""
    tensorflow = None
    for dist in ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly"):
        try:
            tensorflow = metadata.version(dist)
            break
        except metadata.PackageNotFoundError:
            continue
    return {"python": platform.python_version(), "tensorflow": tensorflow}


def require(requires: Mapping[str, str], found: Mapping[str, str | None]) -> None:
    """Stop with one clear line when the runtime is older (or newer) than supported."""
    problems = unmet(requires, found)
    if problems:
        raise SystemExit(
            "error: unsupported runtime: " + "; ".join(problems) + " (choose another image or "
            "LCG view: `fcgtainer doctor --site SITE --job JOB` lists what fits)"
        )
