"""The state vocabulary shared by every backend, defined once."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass


class State(str, enum.Enum):
    """Where a task is, whatever the scheduler."""

    PENDING = "pending"
    RUNNING = "running"
    HELD = "held"
    REQUEUED = "requeued"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"
    UPSTREAM_FAILED = "upstream failed"  # a campaign task whose input task did not succeed
    # a campaign task of a step with ``on_upstream_failure: wait``: not run, not failed; it
    # goes with the task it reads when that one is rerun (resubmit)
    UPSTREAM_WAIT = "waiting on upstream"
    UNKNOWN = "unknown"

    @property
    def terminal(self) -> bool:
        """True when nothing more will happen to the task by itself."""
        return self in TERMINAL


TERMINAL = frozenset(
    {
        State.SUCCEEDED,
        State.FAILED,
        State.CANCELLED,
        State.LOST,
        State.UPSTREAM_FAILED,
        State.UPSTREAM_WAIT,
    }
)

# Exit codes of the task contract (docs/payload-contract.md).
EXIT_CONFIG = 2
EXIT_REQUEUE = 85
EXIT_NO_GPU = 86
EXIT_NO_CVMFS = 87
EXIT_UPSTREAM = 88  # the wrapper's: an upstream task of a campaign did not succeed
EXIT_UPSTREAM_WAIT = 89  # the same, for a step that waits (on_upstream_failure: wait)
NOT_RETRIED = frozenset(
    {EXIT_CONFIG, EXIT_NO_GPU, EXIT_NO_CVMFS, EXIT_UPSTREAM, EXIT_UPSTREAM_WAIT}
)


@dataclass(frozen=True)
class TaskStatus:
    """A task's state with the exit code and reason when known."""

    state: State
    exit_code: int | None = None
    reason: str = ""


def from_marker(exit_code: int) -> TaskStatus:
    """The final state a job wrapper's exit-code marker stands for."""
    if exit_code == 0:
        return TaskStatus(State.SUCCEEDED, 0)
    if exit_code == EXIT_UPSTREAM:
        return TaskStatus(State.UPSTREAM_FAILED, exit_code, "upstream failed")
    if exit_code == EXIT_UPSTREAM_WAIT:
        return TaskStatus(State.UPSTREAM_WAIT, exit_code, "waits for an upstream task's rerun")
    reasons = {
        EXIT_CONFIG: "configuration error",
        EXIT_NO_GPU: "GPUs requested but none visible",
        EXIT_NO_CVMFS: "CVMFS unavailable",
        EXIT_REQUEUE: "checkpointed, waiting to be requeued",
    }
    if exit_code < 0 or 128 < exit_code < 160:  # bash reports a child killed by signal n as 128+n
        signal = -exit_code if exit_code < 0 else exit_code - 128
        return TaskStatus(State.FAILED, exit_code, f"killed by signal {signal}")
    return TaskStatus(State.FAILED, exit_code, reasons.get(exit_code, f"exit code {exit_code}"))


def summarise(states: Iterable[State]) -> State:
    """One state for a whole run."""
    counts = Counter(states)
    if not counts:
        return State.UNKNOWN
    for active in (State.RUNNING, State.REQUEUED, State.PENDING, State.HELD, State.UNKNOWN):
        if counts[active]:
            return active
    for final in (
        State.FAILED,
        State.LOST,
        State.UPSTREAM_FAILED,
        State.UPSTREAM_WAIT,
        State.CANCELLED,
    ):
        if counts[final]:
            return final
    return State.SUCCEEDED
