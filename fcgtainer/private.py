"""Files only their owner can read or change, whatever the umask.

Directories 0700 and files 0600, or 0750 / 0640 where a site shares its runs with the
group (``share_group: true``): never writable by anyone else.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def modes(share_group: bool) -> tuple[int, int]:
    """``(directory mode, file mode)`` of everything a run writes."""
    return (0o750, 0o640) if share_group else (0o700, 0o600)


@contextlib.contextmanager
def private_umask(share_group: bool = False) -> Iterator[None]:
    """A umask that leaves nothing writable (or, unless shared, readable) by others."""
    previous = os.umask(0o027 if share_group else 0o077)
    try:
        yield
    finally:
        os.umask(previous)


def make_private_dir(path: Path, share_group: bool = False) -> None:
    """Create ``path`` (and missing parents) and set its mode, whatever the umask."""
    dir_mode, _ = modes(share_group)
    with private_umask(share_group):
        path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, dir_mode)


def write_private(
    path: Path, data: bytes, share_group: bool = False, mode: int | None = None
) -> None:
    """Write ``data`` atomically to a file created with a private mode (never widened)."""
    _, file_mode = modes(share_group)
    final = file_mode if mode is None else mode
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, final)
        with os.fdopen(fd, "wb", closefd=False) as fh:
            fh.write(data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def append_private(path: Path, content: bytes, share_group: bool = False) -> None:
    """Append ``content`` to ``path``, creating it private (0600, or 0640 if shared)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, modes(share_group)[1])
    try:
        os.write(fd, content)
    finally:
        os.close(fd)
