"""Atomic checkpoints: survive kill -9 at any instant, resume from the newest valid one.

A checkpoint is two files, written in this order:

1. ``ckpt-{iteration:09d}.npz``: the arrays, written to a unique temporary file in the same
   directory, flushed, fsynced and renamed with ``os.replace`` (then the directory is fsynced);
2. ``ckpt-{iteration:09d}.json``: the metadata (iteration, size and SHA-256 of the npz,
   anything the caller adds), written the same way. It is the commit record: a checkpoint
   without it does not exist.

A kill leaves at most a stray temporary file (unique names: it never blocks the next write)
or an npz without metadata (ignored, overwritten by the next write of that iteration).
Loading checks size and hash, so a damaged file makes the loader fall back to the
previous checkpoint instead of failing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_NAME = re.compile(r"^(?P<stem>[a-z]+)-(?P<it>\d{9})\.json$")
_TMP_PREFIX = ".tmp-"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX + path.name + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: its iteration, arrays and metadata."""

    iteration: int
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


def save(
    directory: Path,
    iteration: int,
    arrays: Mapping[str, np.ndarray],
    meta: Mapping[str, Any] | None = None,
    stem: str = "ckpt",
    keep: int | None = None,
) -> Path:
    """Write one checkpoint atomically (arrays first, metadata last); return the json path.

    Parameters
    ----------
    directory : pathlib.Path
        Where checkpoints live (created if needed).
    iteration : int
        Training iteration the arrays belong to.
    arrays : mapping of str to numpy.ndarray
        The state.
    meta : mapping, optional
        Extra JSON-serialisable metadata.
    stem : str
        File name stem (``ckpt`` for full training state, ``gen`` for generator snapshots).
    keep : int, optional
        Keep only the newest ``keep`` checkpoints with this stem.
    """
    directory.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy stubs reserve allow_pickle
    data = buf.getvalue()
    npz = directory / f"{stem}-{iteration:09d}.npz"
    write_atomic(npz, data)
    record = {
        "iteration": iteration,
        "npz": npz.name,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "written": time.time(),
        **(meta or {}),
    }
    info = npz.with_suffix(".json")
    write_atomic(info, json.dumps(record, indent=1, sort_keys=True).encode())
    if keep is not None:
        for old in list_records(directory, stem)[:-keep]:
            old.unlink(missing_ok=True)  # the commit record first: never a half-checkpoint
            old.with_suffix(".npz").unlink(missing_ok=True)
    return info


def list_records(directory: Path, stem: str = "ckpt") -> list[Path]:
    """Metadata files of ``stem`` checkpoints in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = _NAME.match(p.name)
        if m and m["stem"] == stem:
            found.append((int(m["it"]), p))
    return [p for _, p in sorted(found)]


def load(record: Path) -> Checkpoint:
    """Load and verify one checkpoint from its metadata file.

    Raises
    ------
    ValueError
        If the metadata is unreadable or the npz is missing, truncated or altered.
    """
    try:
        meta = json.loads(record.read_text())
        data = (record.parent / meta["npz"]).read_bytes()
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{record}: unreadable checkpoint: {exc}") from exc
    if len(data) != meta["size"] or hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise ValueError(f"{record}: {meta['npz']} does not match its recorded size/hash")
    with np.load(io.BytesIO(data)) as z:
        arrays = {k: z[k] for k in z.files}
    return Checkpoint(int(meta["iteration"]), arrays, meta)


def latest_valid(directory: Path, stem: str = "ckpt") -> Checkpoint | None:
    """The newest checkpoint that loads and verifies, skipping damaged ones; None if none."""
    for record in reversed(list_records(directory, stem)):
        try:
            return load(record)
        except ValueError as exc:
            print(f"warning: skipping {exc}", flush=True)
    return None


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete temporary files left by killed writers (call only with no writer running)."""
    removed = []
    if directory.is_dir():
        for p in directory.iterdir():
            if p.name.startswith(_TMP_PREFIX):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed
