"""The run journal: one record per run, one row per task, in SQLite (WAL).

A run's UUID is written here before anything reaches a scheduler, so a crash or a
timed-out submission can be reconciled by UUID instead of being submitted twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fcgtainer.errors import JournalError, NotFoundError
from fcgtainer.paths import state_dir
from fcgtainer.states import State, TaskStatus

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    site TEXT NOT NULL,
    scheduler TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    created REAL NOT NULL,
    phase TEXT NOT NULL,          -- submitting | submitted | feeding | cancelled
    plan_key TEXT NOT NULL,
    manifest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    run_id TEXT NOT NULL REFERENCES runs(id),
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    backend_id TEXT,
    state TEXT NOT NULL,
    exit_code INTEGER,
    reason TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL,
    PRIMARY KEY (run_id, idx)
);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created);
"""


@dataclass(frozen=True)
class RunRecord:
    """A run as the journal knows it."""

    id: str
    job: str
    site: str
    scheduler: str
    run_dir: Path
    created: float
    phase: str
    plan_key: str
    manifest: Mapping[str, Any]


@dataclass(frozen=True)
class TaskRecord:
    """A task as the journal last saw it."""

    run_id: str
    index: int
    name: str
    backend_id: str | None
    status: TaskStatus
    updated: float


class Journal:
    """The journal database; safe under concurrent CLI processes."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / "journal.sqlite"
        self.readonly = False
        try:
            self._open(explicit=path is not None)
        except sqlite3.DatabaseError as exc:
            raise _journal_error(self.path, exc) from None
        except OSError as exc:
            raise JournalError(
                f"{self.path}: cannot create the journal ({exc.strerror})",
                "point FCGTAINER_STATE_DIR at a directory you can write",
            ) from None

    def _open(self, *, explicit: bool) -> None:
        if self.path.exists() and not _writable(self.path):
            # status, logs and the run list still work; anything that must write says why
            self.readonly = True
            try:
                uri = f"file:{quote(str(self.path))}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None)
                self._db.execute("SELECT count(*) FROM runs").fetchone()
            except sqlite3.OperationalError:
                # WAL needs its -shm file; without a way to create it, read the file as it is
                uri = f"file:{quote(str(self.path))}?mode=ro&immutable=1"
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None)
                self._db.execute("SELECT count(*) FROM runs").fetchone()
            return
        # private whatever the umask: the journal holds every run's manifest
        previous = os.umask(0o077)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not explicit:
                with contextlib.suppress(PermissionError):
                    os.chmod(self.path.parent, 0o700)
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(SCHEMA)
        finally:
            os.umask(previous)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError, PermissionError):
                os.chmod(f"{self.path}{suffix}", 0o600)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise JournalError(
                f"{self.path}: the journal is read-only here",
                f"make it writable (chmod u+w {self.path} and its directory) or point "
                "FCGTAINER_STATE_DIR at a writable directory",
            )
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise _journal_error(self.path, exc) from None
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def create_run(
        self,
        run_id: str,
        *,
        job: str,
        site: str,
        scheduler: str,
        run_dir: Path,
        plan_key: str,
        manifest: Mapping[str, Any],
        task_names: Iterable[str],
    ) -> None:
        """Record a run and its tasks as ``submitting``, before any scheduler call."""
        now = time.time()
        with self._write() as db:
            db.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    job,
                    site,
                    scheduler,
                    str(run_dir),
                    now,
                    "submitting",
                    plan_key,
                    json.dumps(manifest, sort_keys=True, default=str),
                ),
            )
            db.executemany(
                "INSERT INTO tasks (run_id, idx, name, state, updated) VALUES (?,?,?,?,?)",
                ((run_id, i, name, State.UNKNOWN.value, now) for i, name in enumerate(task_names)),
            )

    def set_backend_ids(self, run_id: str, ids: Mapping[int, str]) -> None:
        """Record the scheduler's ids and mark the run submitted."""
        now = time.time()
        with self._write() as db:
            db.executemany(
                "UPDATE tasks SET backend_id=?, state=?, updated=? WHERE run_id=? AND idx=?",
                ((bid, State.PENDING.value, now, run_id, i) for i, bid in ids.items()),
            )
            db.execute("UPDATE runs SET phase='submitted' WHERE id=?", (run_id,))

    def set_phase(self, run_id: str, phase: str) -> None:
        """Change a run's phase (``submitting``, ``submitted``, ``feeding``, ``cancelled``)."""
        with self._write() as db:
            db.execute("UPDATE runs SET phase=? WHERE id=?", (phase, run_id))

    def update_states(self, run_id: str, states: Mapping[int, TaskStatus]) -> None:
        """Store the latest known state of some tasks (a cache: skipped when read-only)."""
        if self.readonly:
            return
        now = time.time()
        with self._write() as db:
            db.executemany(
                "UPDATE tasks SET state=?, exit_code=?, reason=?, updated=? "
                "WHERE run_id=? AND idx=?",
                ((s.state.value, s.exit_code, s.reason, now, run_id, i) for i, s in states.items()),
            )

    def run(self, prefix: str) -> RunRecord:
        """The run whose UUID starts with ``prefix`` (unique), or the latest for ``last``."""
        if prefix in ("last", "latest", "-"):
            rows = self._db.execute("SELECT * FROM runs ORDER BY created DESC LIMIT 1").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM runs WHERE id LIKE ? ORDER BY created DESC LIMIT 2",
                (prefix.replace("%", "").replace("_", "") + "%",),
            ).fetchall()
        if not rows:
            raise NotFoundError(f"run {prefix!r}: no such run", "`fcgtainer status` lists runs")
        if len(rows) > 1:
            raise NotFoundError(f"run {prefix!r}: ambiguous", "give more characters of the id")
        return _run_record(rows[0])

    def runs(self, limit: int = 20) -> list[RunRecord]:
        """The most recent runs, newest first."""
        rows = self._db.execute(
            "SELECT * FROM runs ORDER BY created DESC LIMIT ?", (limit,)
        ).fetchall()
        return [_run_record(r) for r in rows]

    def pending_runs(self, plan_key: str) -> list[RunRecord]:
        """Runs of this exact plan that were journaled but never confirmed submitted."""
        rows = self._db.execute(
            "SELECT * FROM runs WHERE plan_key=? AND phase='submitting' ORDER BY created",
            (plan_key,),
        ).fetchall()
        return [_run_record(r) for r in rows]

    def tasks(self, run_id: str) -> list[TaskRecord]:
        """Every task of a run, in index order."""
        rows = self._db.execute(
            "SELECT run_id, idx, name, backend_id, state, exit_code, reason, updated "
            "FROM tasks WHERE run_id=? ORDER BY idx",
            (run_id,),
        ).fetchall()
        return [
            TaskRecord(r[0], r[1], r[2], r[3], TaskStatus(State(r[4]), r[5], r[6]), r[7])
            for r in rows
        ]


def _writable(path: Path) -> bool:
    """The journal and its directory (WAL needs its -wal and -shm files) are writable."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _journal_error(path: Path, exc: sqlite3.DatabaseError) -> JournalError:
    """One line naming the journal file and what to do about it."""
    text = str(exc)
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return JournalError(
            f"{path}: cannot write the journal ({text})",
            f"make it writable (chmod u+w {path} and its directory) or point "
            "FCGTAINER_STATE_DIR at a writable directory",
        )
    return JournalError(
        f"{path}: the journal is damaged ({text})",
        f"move it aside (mv {path} {path}.damaged) and run again: the run directories stay, "
        "but the runs are no longer listed",
    )


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        id=row[0],
        job=row[1],
        site=row[2],
        scheduler=row[3],
        run_dir=Path(row[4]),
        created=row[5],
        phase=row[6],
        plan_key=row[7],
        manifest=json.loads(row[8]),
    )
