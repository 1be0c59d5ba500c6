"""Merging the scheduler's view with the wrapper's marker: never SUCCEEDED without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcgtainer.runs.monitor import merge, out_of_space
from fcgtainer.states import State, TaskStatus, summarise

pytestmark = pytest.mark.unit
RUNNING = TaskStatus(State.RUNNING)
PENDING = TaskStatus(State.PENDING)


@pytest.mark.parametrize(
    ("scheduler", "marker", "overdue", "expected"),
    [
        (None, 0, False, State.SUCCEEDED),
        (None, 3, False, State.FAILED),
        (RUNNING, 0, False, State.SUCCEEDED),
        (RUNNING, 3, False, State.RUNNING),  # a retry is running
        (PENDING, 85, False, State.REQUEUED),  # checkpointed and requeued
        (None, 85, False, State.REQUEUED),
        (None, 85, True, State.FAILED),
        (None, None, False, State.UNKNOWN),
        (None, None, True, State.LOST),  # gone from the scheduler, no marker
        (TaskStatus(State.SUCCEEDED), None, True, State.LOST),  # never trust absence
        (TaskStatus(State.CANCELLED), None, False, State.CANCELLED),
        (TaskStatus(State.HELD, reason="disk quota"), None, False, State.HELD),
    ],
)
def test_merge(
    scheduler: TaskStatus | None, marker: int | None, overdue: bool, expected: State
) -> None:
    assert merge(scheduler, marker, cancelled=False, overdue=overdue).state is expected


def test_failed_keeps_exit_code() -> None:
    status = merge(None, 3, cancelled=False, overdue=False)
    assert status.exit_code == 3 and "3" in status.reason


def test_summary() -> None:
    assert summarise([State.SUCCEEDED, State.RUNNING]) is State.RUNNING
    assert summarise([State.SUCCEEDED, State.FAILED]) is State.FAILED
    assert summarise([State.SUCCEEDED] * 3) is State.SUCCEEDED


def test_removed_by_the_pool_after_a_checkpoint_is_resumable_not_cancelled() -> None:
    """HTCondor removing a task at MaxRuntime / JobFlavour: kill_sig made it checkpoint."""
    removed = TaskStatus(State.CANCELLED, reason="removed")
    status = merge(removed, 85, cancelled=False, overdue=False)
    assert status.state is State.FAILED and "resubmit" in status.reason
    assert merge(removed, 85, cancelled=True, overdue=False).state is State.CANCELLED


def test_a_task_that_ended_on_a_full_disk_says_so_and_how_to_go_on(tmp_path: Path) -> None:
    """The wrapper's ``no_space`` note (it needed its reserved room to record the attempt)."""
    failed = merge(None, 1, cancelled=False, overdue=False)
    (tmp_path / "tasks" / "0").mkdir(parents=True)
    assert out_of_space(tmp_path, 0, failed) == failed  # no note: the reason stays
    (tmp_path / "tasks" / "0" / "no_space").write_text("No space left on device\n")
    status = out_of_space(tmp_path, 0, failed)
    assert status.state is State.FAILED and status.exit_code == 1
    assert status.reason == (
        "exit code 1; the run directory was full when it ended (No space left on device): "
        "free space there, then `fcgtainer resubmit`"
    )
