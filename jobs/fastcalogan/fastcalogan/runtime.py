"""The oldest Python and TensorFlow the payload runs on, checked before TensorFlow loads.

The payload uses no API newer than TensorFlow 2.12 (its workload tests run on 2.12 and on
the current release); an older runtime, e.g. an LCG view too old for it, is one clear error
at start instead of an AttributeError deep in training. ``job.yaml``'s ``requires`` says the
same to fcgtainer, which refuses such an image at submit when it knows the view.
"""

from __future__ import annotations

import sys
from importlib import metadata

from .errors import ConfigError

MIN_PYTHON = (3, 9)
MIN_TENSORFLOW = (2, 12)
# the names TensorFlow is installed under (pip wheels, LCG views, nightlies)
DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel", "tf-nightly")
FIX = "use an image whose Python/TensorFlow are recent enough (docs/images.md lists the views)"


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        digits = "".join(c for c in part[:4] if c.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def tensorflow_version() -> str | None:
    """The installed TensorFlow's version from its metadata (no import); None if unknown."""
    for name in DISTRIBUTIONS:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def check(python: tuple[int, ...] | None = None, tensorflow: str | None = None) -> None:
    """Raise ConfigError when this Python or TensorFlow is older than the payload supports.

    An unknown TensorFlow version (no metadata) passes: importing it will say more.
    """
    py = tuple(sys.version_info[:3]) if python is None else python
    if py[:2] < MIN_PYTHON:
        raise ConfigError(
            f"Python {'.'.join(map(str, py))} is older than the payload's minimum "
            f"{'.'.join(map(str, MIN_PYTHON))}; {FIX}"
        )
    tf = tensorflow_version() if tensorflow is None else tensorflow
    if tf is not None and _release(tf)[:2] < MIN_TENSORFLOW:
        raise ConfigError(
            f"TensorFlow {tf} is older than the payload's minimum "
            f"{'.'.join(map(str, MIN_TENSORFLOW))}; {FIX}"
        )
