"""Images: where built images live and their digests (the build itself: see build issue)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from fcgtainer.journal import state_dir
from fcgtainer.site import Site


def images_dir(site: Site | None = None) -> Path:
    """Where built images and their provenance JSON live."""
    if site is not None and site.apptainer.images_dir:
        return Path(site.apptainer.images_dir).expanduser()
    return state_dir() / "images"


def find_image(recipe: str, site: Site | None = None) -> str:
    """The newest built image of ``recipe`` (a path, existing or not)."""
    return str(images_dir(site) / f"{recipe}.sif")


def image_digest(path: Path) -> str | None:
    """The sha256 of an image, cached beside it keyed by size and mtime."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    cache = path.with_name(path.name + ".sha256.json")
    key = [stat.st_size, stat.st_mtime_ns]
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return str(cached["sha256"])
    except (FileNotFoundError, ValueError, KeyError):
        pass
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    with contextlib.suppress(OSError):
        cache.write_text(json.dumps({"key": key, "sha256": value}))
    return value
