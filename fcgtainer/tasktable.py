"""A run's task table: every task's spec, argv, bounds and upstream tasks in a few files.

``submit`` writes the table instead of a directory and seven files per task (on a shared
filesystem each file costs milliseconds: 300 tasks were 2,100 creations, 100,000 tasks
700,000). When a task first starts, the wrapper copies its own lines into ``tasks/<i>/``
(``node/table.sh``), and from then on everything reads the per-task files as before. Until
then the host's readers (the local supervisor, the report) read the table.

For task ``i``: chunk ``c = i // CHUNK``, line ``i % CHUNK + 1`` of::

    RUN_DIR/table/<c>.spec   its spec.json on one line, "attempt" first (JSON has no raw
                             newline; the wrapper rewrites the attempt at the line's start)
    RUN_DIR/table/<c>.argv   base64 of its argv, NUL-separated (values may hold newlines)
    RUN_DIR/table/<c>.task   "retries max_requeues walltime signal_margin [wait] [upstream ...]"
                             ("wait": the task waits, not fails, when an upstream one failed)

Indices are dense from 0; a chunk holds a line for every index of its range.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHUNK = 1000  # node/table.sh has the same number


@dataclass(frozen=True)
class Row:
    """What the table says of one task."""

    retries: int
    max_requeues: int
    walltime: int
    signal_margin: int
    upstream: tuple[int, ...]
    wait: bool = False  # on_upstream_failure: wait


def chunk_path(run_dir: Path, index: int, kind: str) -> Path:
    """The chunk file of ``kind`` (spec, argv, task) holding task ``index``."""
    return run_dir / "table" / f"{index // CHUNK}.{kind}"


def spec_line(spec: Mapping[str, Any]) -> bytes:
    """A spec as its table line: compact, ``"attempt"`` first."""
    first = {"attempt": spec.get("attempt", 1)}
    rest = {k: v for k, v in spec.items() if k != "attempt"}
    return json.dumps({**first, **rest}, separators=(",", ": ")).encode() + b"\n"


def argv_line(argv: Sequence[str]) -> bytes:
    """An argv as its table line."""
    return base64.b64encode(b"".join(a.encode() + b"\0" for a in argv)) + b"\n"


def task_line(row: Row) -> bytes:
    """A task's bounds and upstream tasks as its table line."""
    bounds = (row.retries, row.max_requeues, row.walltime, row.signal_margin)
    words = (*map(str, bounds), *(("wait",) if row.wait else ()), *map(str, row.upstream))
    return " ".join(words).encode() + b"\n"


def chunks(lines: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
    """``(index, line)`` in index order -> ``(chunk, content)``; gaps become empty lines."""
    for chunk, group in itertools.groupby(lines, key=lambda item: item[0] // CHUNK):
        out: list[bytes] = []
        expected = chunk * CHUNK
        for index, line in group:
            out += [b"\n"] * (index - expected)
            out.append(line)
            expected = index + 1
        yield chunk, b"".join(out)


def _line(path: Path, index: int) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            line = next(itertools.islice(handle, index % CHUNK, None), None)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return None if line is None else line.rstrip("\n")


def parse_task_line(line: str) -> Row | None:
    """A ``.task`` line as a Row; None when it is empty or malformed."""
    words = line.split()
    wait = len(words) > 4 and words[4] == "wait"
    if wait:
        del words[4]
    if len(words) < 4 or not all(w.isdigit() for w in words):
        return None
    numbers = [int(w) for w in words]
    return Row(numbers[0], numbers[1], numbers[2], numbers[3], tuple(numbers[4:]), wait)


def row(run_dir: Path, index: int) -> Row | None:
    """Task ``index``'s row, or None when the run has no table line for it."""
    line = _line(chunk_path(run_dir, index, "task"), index)
    return None if line is None else parse_task_line(line)


def rows(run_dir: Path) -> dict[int, Row]:
    """Every task's row, reading each chunk once."""
    out: dict[int, Row] = {}
    for path in (run_dir / "table").glob("*.task"):
        if not path.stem.isdigit():
            continue
        base = int(path.stem) * CHUNK
        with open(path, encoding="utf-8") as handle:
            for k, line in enumerate(handle):
                parsed = parse_task_line(line)
                if parsed is not None:
                    out[base + k] = parsed
    return out


def spec(run_dir: Path, index: int) -> dict[str, Any] | None:
    """Task ``index``'s spec: its own ``spec.json`` once it started, else the table's."""
    own = run_dir / "tasks" / str(index) / "spec.json"
    try:
        text: str | None = own.read_text()
    except (FileNotFoundError, NotADirectoryError):
        text = _line(chunk_path(run_dir, index, "spec"), index)
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def indices(run_dir: Path) -> list[int]:
    """Every task index the table has a spec for, in order."""
    found: list[int] = []
    for path in sorted(
        (p for p in (run_dir / "table").glob("*.spec") if p.stem.isdigit()),
        key=lambda p: int(p.stem),
    ):
        base = int(path.stem) * CHUNK
        with open(path, encoding="utf-8") as handle:
            found += [base + k for k, line in enumerate(handle) if line.strip()]
    return found


def bundle_lines(bundles: Mapping[int, Sequence[int]]) -> bytes:
    """``RUN_DIR/bundles.txt`` lines: ``LEADER TASK...`` (the leader is the first task)."""
    return b"".join(" ".join(map(str, tasks)).encode() + b"\n" for tasks in bundles.values())


def read_bundles(run_dir: Path) -> dict[int, tuple[int, ...]]:
    """Each bundle's tasks by leader, as ``node/bundle.sh`` reads them: the last line wins."""
    out: dict[int, tuple[int, ...]] = {}
    try:
        text = (run_dir / "bundles.txt").read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        words = line.split()
        if words and all(w.isdigit() for w in words):
            out[int(words[0])] = tuple(int(w) for w in words)
    return out
