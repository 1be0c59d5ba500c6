"""Migrating a layout-1 journal (one wide row per task) to the current layout.

Layout 1 held, per task, the run's UUID, the task's name, the scheduler id, the state as
text and the reason as text (about 150 bytes a task). Run once, in the transaction that
opens the journal (``Journal._upgrade``), so a crash leaves the old layout untouched.
"""

from __future__ import annotations

import json
import sqlite3

from fcgtainer.runs.journal import RUN_COLUMNS, SCHEMA, STATE_CODES, split_id
from fcgtainer.states import State

_STATE_VALUES = frozenset(s.value for s in State)


def migrate_v1(db: sqlite3.Connection) -> None:
    """Rewrite a version-1 journal (one wide row per task) in the small-row layout."""
    db.execute("ALTER TABLE runs RENAME TO runs_v1")
    db.execute("ALTER TABLE tasks RENAME TO tasks_v1")
    db.execute("DROP INDEX IF EXISTS runs_created")
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    old_runs = db.execute(f"SELECT {RUN_COLUMNS} FROM runs_v1 ORDER BY created, rowid").fetchall()
    texts: dict[str, int] = {}

    def text_id(text: str) -> int:
        if text not in texts:
            db.execute("INSERT OR IGNORE INTO texts (text) VALUES (?)", (text,))
            found = db.execute("SELECT id FROM texts WHERE text=?", (text,)).fetchone()
            texts[text] = int(found[0])
        return texts[text]

    for run in old_runs:
        tasks = db.execute(
            "SELECT idx, name, backend_id, state, exit_code, reason, updated "
            "FROM tasks_v1 WHERE run_id=? ORDER BY idx",
            (run[0],),
        ).fetchall()
        names = [""] * (max((t[0] for t in tasks), default=-1) + 1)
        for t in tasks:
            names[t[0]] = t[1]
        cursor = db.execute(
            f"INSERT INTO runs ({RUN_COLUMNS}, names) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (*run, json.dumps(names)),
        )
        num = cursor.lastrowid
        rows = []
        for idx, _name, backend_id, state, exit_code, reason, updated in tasks:
            id_text = id_num = None
            if backend_id:
                prefix, id_num = split_id(backend_id)
                id_text = text_id(prefix)
            code = STATE_CODES[State(state)] if state in _STATE_VALUES else 0
            why = text_id(reason) if reason else None
            rows.append((num, idx, code, id_text, id_num, exit_code, why, updated))
        db.executemany("INSERT INTO tasks VALUES (?,?,?,?,?,?,?,?)", rows)
    db.execute("DROP TABLE tasks_v1")
    db.execute("DROP TABLE runs_v1")
