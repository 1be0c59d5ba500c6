"""The journal: UUID first, concurrent writers, prefix lookup, pending runs."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from fcgtainer.errors import NotFoundError
from fcgtainer.runs.journal import Journal
from fcgtainer.states import State, TaskStatus

pytestmark = pytest.mark.unit


def _create(journal: Journal, run_id: str, key: str = "k") -> None:
    journal.create_run(
        run_id,
        job="j",
        site="s",
        scheduler="local",
        run_dir=Path("/r"),
        plan_key=key,
        manifest={"a": 1},
        task_names=["t0", "t1", "t2"],
    )


def test_run_is_journaled_before_submission(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    _create(journal, "abcdef12-0000")
    assert [r.id for r in journal.pending_runs("k")] == ["abcdef12-0000"]
    journal.set_backend_ids("abcdef12-0000", {0: "1_0", 1: "1_1", 2: "1_2"})
    assert journal.pending_runs("k") == []
    run = journal.run("abcdef")
    assert run.phase == "submitted" and run.manifest == {"a": 1}
    tasks = journal.tasks(run.id)
    assert [t.backend_id for t in tasks] == ["1_0", "1_1", "1_2"]
    assert {t.status.state for t in tasks} == {State.PENDING}


def test_states_and_lookup(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    _create(journal, "aaaa1111")
    _create(journal, "aaaa2222")
    with pytest.raises(NotFoundError, match="ambiguous"):
        journal.run("aaaa")
    with pytest.raises(NotFoundError, match="no such run"):
        journal.run("zzzz")
    journal.update_states("aaaa1111", {1: TaskStatus(State.FAILED, 3, "exit code 3")})
    assert journal.tasks("aaaa1111")[1].status == TaskStatus(State.FAILED, 3, "exit code 3")
    assert journal.run("last").id == "aaaa2222"


def _writer(path: str, n: int) -> None:
    journal = Journal(Path(path))
    for i in range(20):
        _create(journal, f"run-{n}-{i}", key=str(n))
        journal.update_states(f"run-{n}-{i}", {0: TaskStatus(State.SUCCEEDED, 0)})


def test_concurrent_cli_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "j.sqlite")
    Journal(Path(path)).close()
    procs = [multiprocessing.Process(target=_writer, args=(path, n)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert len(Journal(Path(path)).runs(limit=1000)) == 80
