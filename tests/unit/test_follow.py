"""The polling loops of ``status --watch`` and ``logs --follow`` (fcgtainer.runs.follow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fcgtainer.runs import follow
from fcgtainer.runs.journal import RunRecord, TaskRecord
from fcgtainer.states import State, TaskStatus

pytestmark = pytest.mark.unit


def run_record(run_dir: Path) -> RunRecord:
    return RunRecord("r" * 32, "job", "site", "local", run_dir, 0.0, "submitted", "k", {})


def tasks(*states: State) -> list[TaskRecord]:
    return [TaskRecord("r", i, str(i), str(i), TaskStatus(s), 0.0) for i, s in enumerate(states)]


def test_watch_backs_off_until_every_task_has_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter(
        [tasks(State.PENDING, State.RUNNING)] * 3 + [tasks(State.SUCCEEDED, State.FAILED)]
    )
    monkeypatch.setattr(follow.monitor, "refresh", lambda journal, run: next(answers))
    slept: list[float] = []
    seen = list(follow.watch(Any, run_record(tmp_path), sleep=slept.append))  # type: ignore[arg-type]
    assert len(seen) == 4 and all(t.status.state.terminal for t in seen[-1])
    assert slept == [1.0, 1.5, 2.25]


def test_log_chunks_follow_until_the_task_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "tasks" / "0" / "task.log"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"one\n")
    states = iter([State.RUNNING, State.SUCCEEDED])

    def refresh(journal: object, run: object) -> list[TaskRecord]:
        state = next(states)
        if state is State.SUCCEEDED:
            with log.open("ab") as fh:
                fh.write(b"two\n")
        return tasks(state)

    monkeypatch.setattr(follow.monitor, "refresh", refresh)
    chunks = list(
        follow.log_chunks(Any, run_record(tmp_path), 0, follow=True, sleep=lambda s: None)  # type: ignore[arg-type]
    )
    assert b"".join(chunks) == b"one\ntwo\n"
