"""The journal at scale: a bounded number of statements per poll, a truncated WAL after a
big write, small rows, and the migration of a version-1 journal."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from fcgtainer import proc
from fcgtainer.backends.slurm import SlurmBackend
from fcgtainer.config.site import Site
from fcgtainer.errors import JournalError
from fcgtainer.runs import journal as journal_mod
from fcgtainer.runs import monitor
from fcgtainer.runs.journal import Journal, split_id
from fcgtainer.states import State, TaskStatus

pytestmark = pytest.mark.unit

SITE = Site.model_validate({"scheduler": "slurm"})


def _journal_run(tmp_path: Path, tasks: int, name: str = "j.sqlite") -> tuple[Journal, str]:
    """A submitted SLURM run of ``tasks`` tasks, ids 4242_0 .. 4242_{tasks-1}."""
    journal = Journal(tmp_path / name)
    run_id = f"run-{tasks:08d}"
    journal.create_run(
        run_id,
        job="big",
        site="slurm",
        scheduler="slurm",
        run_dir=tmp_path / "runs" / run_id,  # no task has written a marker
        plan_key="k",
        manifest={"site": SITE.model_dump(mode="json"), "job": {}},
        task_names=[f"n={i}" for i in range(tasks)],
    )
    journal.set_backend_ids(run_id, {i: f"4242_{i}" for i in range(tasks)})
    return journal, run_id


class PendingSlurm:
    """squeue's answer for a whole pending array, counting the scheduler calls."""

    def __init__(self, tasks: int) -> None:
        self.tasks = tasks
        self.calls: list[Sequence[str]] = []

    def __call__(self, argv: Sequence[str], **_: Any) -> proc.Completed:
        self.calls.append(argv)
        out = f"4242_[0-{self.tasks - 1}]|PENDING|Priority\n" if argv[0] == "squeue" else ""
        return proc.Completed(tuple(argv), 0, out, "")


def _poll_statements(
    tmp_path: Path, tasks: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], list[str], int]:
    """The SQL of a first poll (every task changes) and a second (nothing changes)."""
    journal, run_id = _journal_run(tmp_path, tasks, f"j{tasks}.sqlite")
    fake = PendingSlurm(tasks)
    monkeypatch.setattr(monitor, "get_backend", lambda site: SlurmBackend(site, runner=fake))
    polls: list[list[str]] = []
    for _ in range(2):
        seen: list[str] = []
        journal._db.set_trace_callback(seen.append)  # the one connection every query uses
        tasks_now = monitor.refresh(journal, journal.run(run_id))
        journal._db.set_trace_callback(None)
        polls.append(seen)
        assert len(tasks_now) == tasks
        assert {t.status for t in tasks_now} == {TaskStatus(State.PENDING, reason="Priority")}
    return polls[0], polls[1], len(fake.calls)


def test_statements_per_poll_do_not_grow_with_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_first, small_again, small_calls = _poll_statements(tmp_path, 100, monkeypatch)
    big_first, big_again, big_calls = _poll_statements(tmp_path, 10_000, monkeypatch)
    # one squeue per poll, whatever the number of tasks (sacct: none, squeue listed them all)
    assert small_calls == big_calls == 2
    # a poll that changes nothing reads the journal in the same few statements
    assert len(small_again) == len(big_again) <= 10
    assert not any(s.lstrip().upper().startswith(("UPDATE", "INSERT")) for s in big_again)

    # a poll that changes every task (all alike): one UPDATE for the whole array, a big one
    # followed by a WAL checkpoint, and otherwise the same statements as for 100 tasks
    def others(statements: list[str]) -> list[str]:
        return [s for s in statements if not s.startswith("PRAGMA")]

    assert len(others(small_first)) == len(others(big_first)) <= 12
    assert len([s for s in big_first if s.startswith("UPDATE tasks SET")]) == 1
    assert "PRAGMA wal_checkpoint(TRUNCATE)" in big_first
    assert "PRAGMA wal_checkpoint(TRUNCATE)" not in small_first


def test_changes_of_every_shape_are_stored(tmp_path: Path) -> None:
    journal, run_id = _journal_run(tmp_path, 12)
    journal.set_backend_ids(run_id, {3: "99_0", 4: "99_1", 7: "x.007", 8: "local"})
    changes = {
        0: TaskStatus(State.RUNNING),
        1: TaskStatus(State.RUNNING),
        2: TaskStatus(State.FAILED, 3, "exit code 3"),
        5: TaskStatus(State.FAILED, 4, "exit code 4"),
        6: TaskStatus(State.FAILED, 4, "exit code 4"),
        9: TaskStatus(State.SUCCEEDED, 0),
        11: TaskStatus(State.RUNNING),
    }
    journal.update_states(run_id, changes)
    tasks = journal.tasks(run_id)
    for task in tasks:
        assert task.status == changes.get(task.index, TaskStatus(State.PENDING)), task
        assert task.name == f"n={task.index}"
    ids = {3: "99_0", 4: "99_1", 7: "x.007", 8: "local"}
    assert [t.backend_id for t in tasks] == [ids.get(i, f"4242_{i}") for i in range(12)]


def test_a_big_submit_leaves_no_wal_behind(tmp_path: Path) -> None:
    reader = None
    journal, run_id = _journal_run(tmp_path, 10, "j.sqlite")
    # an idle reader (another CLI process) does not keep the WAL from being truncated
    reader = sqlite3.connect(journal.path)
    reader.execute("SELECT count(*) FROM runs").fetchone()
    big, _ = _journal_run(tmp_path, journal_mod.BIG_WRITE_ROWS * 4, "j.sqlite")
    wal = Path(f"{journal.path}-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    big.update_states(run_id, {0: TaskStatus(State.RUNNING)})  # a small write: left in the WAL
    assert wal.stat().st_size > 0
    reader.close()


def test_rows_are_small(tmp_path: Path) -> None:
    empty = Journal(tmp_path / "empty.sqlite")
    empty._db.execute("VACUUM")
    base = os.path.getsize(empty.path)
    tasks = 20_000
    journal, run_id = _journal_run(tmp_path, tasks)
    lost = TaskStatus(State.LOST, reason="the scheduler no longer knows it and it left no marker")
    journal.update_states(run_id, dict.fromkeys(range(tasks), lost))
    journal._db.execute("VACUUM")
    per_task = (os.path.getsize(journal.path) - base) / tasks
    # the version-1 layout took about 150 bytes a task, before any reason
    assert per_task < 64, per_task
    assert journal.tasks(run_id)[-1].status == lost
    assert journal.tasks(run_id)[-1].backend_id == f"4242_{tasks - 1}"


@pytest.mark.parametrize(
    "backend_id", ["4242_17", "4242_0", "/r/run-1#12", "123.4", "4242_007", "abc", "x0", "7"]
)
def test_scheduler_ids_come_back_as_given(backend_id: str) -> None:
    prefix, number = split_id(backend_id)
    assert prefix + ("" if number is None else str(number)) == backend_id


V1_SCHEMA = """
CREATE TABLE runs (id TEXT PRIMARY KEY, job TEXT NOT NULL, site TEXT NOT NULL,
    scheduler TEXT NOT NULL, run_dir TEXT NOT NULL, created REAL NOT NULL,
    phase TEXT NOT NULL, plan_key TEXT NOT NULL, manifest TEXT NOT NULL);
CREATE TABLE tasks (run_id TEXT NOT NULL REFERENCES runs(id), idx INTEGER NOT NULL,
    name TEXT NOT NULL, backend_id TEXT, state TEXT NOT NULL, exit_code INTEGER,
    reason TEXT NOT NULL DEFAULT '', updated REAL NOT NULL, PRIMARY KEY (run_id, idx));
CREATE INDEX runs_created ON runs(created);
INSERT INTO runs VALUES ('aaaa1111', 'j', 's', 'slurm', '/r', 1.0, 'submitted', 'k', '{"a": 1}');
INSERT INTO runs VALUES ('bbbb2222', 'j', 's', 'local', '/q', 2.0, 'submitting', 'k', '{}');
INSERT INTO tasks VALUES ('aaaa1111', 0, 'n=0', '7_0', 'succeeded', 0, '', 10.0);
INSERT INTO tasks VALUES ('aaaa1111', 1, 'n=1', '7_1', 'failed', 3, 'exit code 3', 11.0);
INSERT INTO tasks VALUES ('bbbb2222', 0, 'task', NULL, 'unknown', NULL, '', 12.0);
"""


def _v1(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.close()


def test_a_version_1_journal_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    _v1(path)
    journal = Journal(path)
    assert journal._db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert journal._db.execute("PRAGMA freelist_count").fetchone()[0] == 0  # vacuumed
    assert {r[0] for r in journal._db.execute("SELECT name FROM sqlite_master")} >= {"texts"}
    assert not {"runs_v1", "tasks_v1"} & {
        r[0] for r in journal._db.execute("SELECT name FROM sqlite_master")
    }
    assert [r.id for r in journal.runs()] == ["bbbb2222", "aaaa1111"]
    assert journal.run("aaaa").manifest == {"a": 1}
    assert [r.id for r in journal.pending_runs("k")] == ["bbbb2222"]
    first, second = journal.tasks("aaaa1111")
    assert (first.name, first.backend_id, first.status, first.updated) == (
        "n=0",
        "7_0",
        TaskStatus(State.SUCCEEDED, 0),
        10.0,
    )
    assert (second.name, second.status) == ("n=1", TaskStatus(State.FAILED, 3, "exit code 3"))
    (orphan,) = journal.tasks("bbbb2222")
    assert orphan.backend_id is None and orphan.status.state is State.UNKNOWN
    journal.close()
    assert Journal(path).tasks("aaaa1111")[1].status.reason == "exit code 3"  # opened again


def test_a_read_only_version_1_journal_is_one_error_naming_file_and_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "journal.sqlite"
    _v1(path)
    monkeypatch.setattr(journal_mod, "_writable", lambda path: False)
    with pytest.raises(JournalError) as caught:
        Journal(path)
    assert str(path) in caught.value.message and "older layout" in caught.value.message
    assert "chmod u+w" in str(caught.value.hint)


def test_a_newer_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=9")
    db.close()
    with pytest.raises(JournalError, match="layout 9, newer"):
        Journal(path)


def test_a_poll_asks_for_a_bundles_job_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """6 tasks in 2 bundles share 2 job ids: the scheduler is asked for 2 ids, not 6."""
    journal, run_id = _journal_run(tmp_path, 6)
    journal.set_backend_ids(run_id, {i: f"4242_{i // 3 * 3}" for i in range(6)})
    asked: list[list[str]] = []

    class Backend:
        def status(self, ids: Sequence[str]) -> dict[str, TaskStatus]:
            asked.append(list(ids))
            return {i: TaskStatus(State.RUNNING) for i in ids}

    monkeypatch.setattr(monitor, "get_backend", lambda site: Backend())
    tasks = monitor.refresh(journal, journal.run(run_id))
    assert asked == [["4242_0", "4242_3"]]
    assert [t.status.state for t in tasks] == [State.RUNNING] * 6
