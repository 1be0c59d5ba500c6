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
from typing import Any, TypeVar
from urllib.parse import quote

from fcgtainer.errors import JournalError, NotFoundError
from fcgtainer.paths import state_dir
from fcgtainer.states import State, TaskStatus

SCHEMA_VERSION = 2
# Version 2: small task rows. Run-wide data (the UUID, the task names) is stored once per
# run; a task row is its run's number, index, state code, scheduler id (an interned prefix
# and a number: ``4242_`` + 17), exit code, interned reason and time of the last change.
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    num INTEGER PRIMARY KEY,      -- the key the tasks refer to their run by
    id TEXT NOT NULL UNIQUE,
    job TEXT NOT NULL,
    site TEXT NOT NULL,
    scheduler TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    created REAL NOT NULL,
    phase TEXT NOT NULL,          -- submitting | submitted | feeding | cancelled
    plan_key TEXT NOT NULL,
    manifest TEXT NOT NULL,
    names TEXT NOT NULL           -- the tasks' names, a JSON list in index order
);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created);
CREATE INDEX IF NOT EXISTS runs_plan ON runs(plan_key, phase);
CREATE TABLE IF NOT EXISTS texts (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL UNIQUE     -- reasons and scheduler id prefixes, each stored once
);
CREATE TABLE IF NOT EXISTS tasks (
    run INTEGER NOT NULL,         -- runs.num
    idx INTEGER NOT NULL,
    state INTEGER NOT NULL,       -- STATE_CODES
    id_text INTEGER,              -- texts.id of the scheduler id's prefix (NULL: no id)
    id_num INTEGER,               -- the scheduler id's number suffix (NULL: none)
    exit_code INTEGER,
    reason INTEGER,               -- texts.id (NULL: no reason)
    updated REAL NOT NULL,
    PRIMARY KEY (run, idx)
) WITHOUT ROWID;
"""

# Stored codes of the states: append new ones, never renumber.
STATE_CODES = {
    State.UNKNOWN: 0,
    State.PENDING: 1,
    State.RUNNING: 2,
    State.HELD: 3,
    State.REQUEUED: 4,
    State.SUCCEEDED: 5,
    State.FAILED: 6,
    State.CANCELLED: 7,
    State.LOST: 8,
    State.UPSTREAM_FAILED: 9,
    State.UPSTREAM_WAIT: 10,
}
STATES = {code: state for state, code in STATE_CODES.items()}

# A write of more rows than this ends with a checkpoint that truncates the WAL, so that a
# big submit leaves a journal file, not a journal file and a WAL as large again.
BIG_WRITE_ROWS = 5000
WAL_LIMIT_BYTES = 4 << 20  # journal_size_limit: what a WAL is cut back to after a checkpoint
_K = TypeVar("_K")
RUN_COLUMNS = "id, job, site, scheduler, run_dir, created, phase, plan_key, manifest"


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


@dataclass(frozen=True, slots=True)
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
                "point FCGTAINER_STATE_DIR at a writable directory",
            ) from None

    def _open(self, *, explicit: bool) -> None:
        if self.path.exists() and not _writable(self.path):
            # status, logs and the run list still work; anything that must write says why
            self.readonly = True
            try:
                uri = f"file:{quote(str(self.path))}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None)
                self._check_version()
            except sqlite3.OperationalError:
                # WAL needs its -shm file; without a way to create it, read the file as it is
                uri = f"file:{quote(str(self.path))}?mode=ro&immutable=1"
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None)
                self._check_version()
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
            self._db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
            if self._db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    migrated = self._upgrade()
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                if migrated:  # give back the old tables' pages: the file shrinks to its rows
                    with contextlib.suppress(sqlite3.OperationalError):
                        self._db.execute("VACUUM")
                self._checkpoint()
        finally:
            os.umask(previous)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError, PermissionError):
                os.chmod(f"{self.path}{suffix}", 0o600)

    def _check_version(self) -> None:
        """A read-only journal is read as it is: only in the layout this code knows."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            raise _old_layout(self.path)
        if version != SCHEMA_VERSION:
            raise _newer_layout(self.path, version)

    def _upgrade(self) -> bool:
        """Create the tables, or migrate a version-1 journal in place (True): in the caller's
        transaction."""
        db = self._db
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise _newer_layout(self.path, version)
        if version == SCHEMA_VERSION:
            return False  # another process got there first
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "runs" in tables:
            from fcgtainer.runs.journal_migrate import migrate_v1

            migrate_v1(db)
        else:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        return "runs" in tables

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    @contextmanager
    def _write(self, rows: int = 0) -> Iterator[sqlite3.Connection]:
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
        if rows > BIG_WRITE_ROWS:
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Copy the WAL into the journal and truncate it; a busy reader only delays that."""
        try:
            self._db.execute("PRAGMA busy_timeout=1000")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.OperationalError:
            pass  # readers kept it busy: the next big write (or the last close) checkpoints
        finally:
            self._db.execute("PRAGMA busy_timeout=30000")

    def _num(self, run_id: str) -> int:
        row = self._db.execute("SELECT num FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"run {run_id!r}: no such run", "`fcgtainer status` lists runs")
        return int(row[0])

    def _text_ids(self, db: sqlite3.Connection, texts: Iterable[str]) -> dict[str, int]:
        """The ids of ``texts`` in the texts table, adding the ones it lacks (in a write)."""
        wanted = sorted(set(texts))
        if not wanted:
            return {}
        db.executemany("INSERT OR IGNORE INTO texts (text) VALUES (?)", ((t,) for t in wanted))
        out: dict[str, int] = {}
        for start in range(0, len(wanted), 500):  # older SQLite allows 999 parameters
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = db.execute(f"SELECT text, id FROM texts WHERE text IN ({marks})", chunk)
            out.update(rows.fetchall())
        return out

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
        names = list(task_names)
        with self._write(len(names)) as db:
            cursor = db.execute(
                f"INSERT INTO runs ({RUN_COLUMNS}, names) VALUES (?,?,?,?,?,?,?,?,?,?)",
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
                    json.dumps(names),
                ),
            )
            num = cursor.lastrowid
            unknown = STATE_CODES[State.UNKNOWN]
            db.executemany(
                "INSERT INTO tasks (run, idx, state, updated) VALUES (?,?,?,?)",
                ((num, i, unknown, now) for i in range(len(names))),
            )

    def set_backend_ids(
        self, run_id: str, ids: Mapping[int, str], *, phase: str = "submitted"
    ) -> None:
        """Record the scheduler's ids and the run's phase, in one transaction.

        ``phase`` is ``feeding`` when some tasks still wait for room: a reader never sees
        them in a ``submitted`` run (where a task without an id is taken for lost).
        """
        now = time.time()
        pending = STATE_CODES[State.PENDING]
        split = {i: split_id(bid) for i, bid in ids.items()}
        with self._write(len(ids)) as db:
            num = self._num(run_id)
            prefixes = self._text_ids(db, (p for p, _ in split.values()))
            # an array's ids are its tasks' indices plus a constant: one range per array
            keys = {
                i: (prefixes[prefix], None if number is None else number - i)
                for i, (prefix, number) in split.items()
            }
            db.executemany(
                "UPDATE tasks SET id_text=?, id_num=idx+?, state=?, updated=? "
                "WHERE run=? AND idx BETWEEN ? AND ?",
                (
                    (id_text, delta, pending, now, num, first, last)
                    for (id_text, delta), first, last in _ranges(keys)
                ),
            )
            db.execute("UPDATE runs SET phase=? WHERE num=?", (phase, num))

    def set_phase(self, run_id: str, phase: str, *, only_from: str | None = None) -> None:
        """Change a run's phase (``submitting``, ``submitted``, ``feeding``, ``cancelled``);
        with ``only_from``, only if it is still that phase."""
        with self._write() as db:
            if only_from is None:
                db.execute("UPDATE runs SET phase=? WHERE id=?", (phase, run_id))
            else:
                db.execute(
                    "UPDATE runs SET phase=? WHERE id=? AND phase=?", (phase, run_id, only_from)
                )

    def update_states(
        self, run_id: str, states: Mapping[int, TaskStatus], *, now: float | None = None
    ) -> float:
        """Store the latest known state of some tasks (a cache: skipped when read-only).

        One statement for all of them, in one transaction; returns the time stamp stored.
        """
        moment = time.time() if now is None else now
        if self.readonly or not states:
            return moment
        with self._write(len(states)) as db:
            num = self._num(run_id)
            reasons = self._text_ids(db, (s.reason for s in states.values() if s.reason))
            keys = {
                i: (STATE_CODES[s.state], s.exit_code, reasons.get(s.reason))
                for i, s in states.items()
            }
            # tasks next to each other that change alike (a whole array starts) go together
            db.executemany(
                "UPDATE tasks SET state=?, exit_code=?, reason=?, updated=? "
                "WHERE run=? AND idx BETWEEN ? AND ?",
                (
                    (state, exit_code, reason, moment, num, first, last)
                    for (state, exit_code, reason), first, last in _ranges(keys)
                ),
            )
        return moment

    def run(self, prefix: str) -> RunRecord:
        """The run whose UUID starts with ``prefix`` (unique), or the latest for ``last``."""
        if prefix in ("last", "latest", "-"):
            rows = self._db.execute(
                f"SELECT {RUN_COLUMNS} FROM runs ORDER BY created DESC LIMIT 1"
            ).fetchall()
        else:
            rows = self._db.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE id LIKE ? ORDER BY created DESC LIMIT 2",
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
            f"SELECT {RUN_COLUMNS} FROM runs ORDER BY created DESC LIMIT ?", (limit,)
        ).fetchall()
        return [_run_record(r) for r in rows]

    def pending_runs(self, plan_key: str) -> list[RunRecord]:
        """Runs of this exact plan that were journaled but never confirmed submitted."""
        rows = self._db.execute(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE plan_key=? AND phase='submitting' "
            "ORDER BY created",
            (plan_key,),
        ).fetchall()
        return [_run_record(r) for r in rows]

    def tasks(self, run_id: str) -> list[TaskRecord]:
        """Every task of a run, in index order: three queries, whatever the number of tasks."""
        row = self._db.execute("SELECT num, names FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            return []
        num, names = row[0], json.loads(row[1])
        texts: dict[int | None, str] = dict(
            self._db.execute(
                "SELECT id, text FROM texts WHERE id IN (SELECT reason FROM tasks WHERE run=?1 "
                "UNION SELECT id_text FROM tasks WHERE run=?1)",
                (num,),
            ).fetchall()
        )
        rows = self._db.execute(
            "SELECT idx, state, id_text, id_num, exit_code, reason, updated "
            "FROM tasks WHERE run=? ORDER BY idx",
            (num,),
        ).fetchall()
        statuses: dict[tuple[int, int | None, int | None], TaskStatus] = {}
        out = []
        for idx, state, id_text, id_num, exit_code, reason, updated in rows:
            key = (state, exit_code, reason)
            status = statuses.get(key)
            if status is None:  # tasks in the same state share one TaskStatus
                status = statuses[key] = TaskStatus(STATES[state], exit_code, texts.get(reason, ""))
            if id_text is None:
                backend_id = None
            elif id_num is None:
                backend_id = texts[id_text]
            else:
                backend_id = f"{texts[id_text]}{id_num}"
            name = names[idx] if idx < len(names) else str(idx)
            out.append(TaskRecord(run_id, idx, name, backend_id, status, updated))
        return out


def _ranges(keys: Mapping[int, _K]) -> Iterator[tuple[_K, int, int]]:
    """Consecutive indices with equal keys as ``(key, first, last)``, in index order."""
    run: list[Any] = []
    for index in sorted(keys):
        key = keys[index]
        if run and run[0] == key and run[2] == index - 1:
            run[2] = index
            continue
        if run:
            yield run[0], run[1], run[2]
        run = [key, index, index]
    if run:
        yield run[0], run[1], run[2]


def split_id(backend_id: str) -> tuple[str, int | None]:
    """A scheduler id as a prefix shared by its run's tasks and a number: ``4242_`` and 17.

    Only a number without leading zeros is split off, so that joining them gives the id back.
    """
    stem = backend_id.rstrip("0123456789")
    digits = backend_id[len(stem) :]
    if not digits or (digits[0] == "0" and digits != "0") or len(digits) > 18:
        return backend_id, None
    return stem, int(digits)


def _old_layout(path: Path) -> JournalError:
    return JournalError(
        f"{path}: the journal is in an older layout and read-only here, so it cannot be migrated",
        f"make it writable (chmod u+w {path} and its directory) and run `fcgtainer status` "
        "once: it migrates the journal in place",
    )


def _newer_layout(path: Path, version: int) -> JournalError:
    return JournalError(
        f"{path}: the journal is in layout {version}, newer than this fcgtainer knows "
        f"({SCHEMA_VERSION})",
        "use the fcgtainer that wrote it, or point FCGTAINER_STATE_DIR at another directory",
    )


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
