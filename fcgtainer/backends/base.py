"""A backend is three verbs on many ids: submit, status, cancel (plus find and describe)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence

from fcgtainer import proc, tasktable
from fcgtainer.config.site import Site
from fcgtainer.plan.tasks import Plan
from fcgtainer.private import append_private
from fcgtainer.states import TaskStatus

Runner = Callable[..., proc.Completed]


def append_bundles(plan: Plan, bundles: Mapping[int, Sequence[int]]) -> None:
    """Add bundles to ``RUN_DIR/bundles.txt``, before the scheduler may start them."""
    lines = tasktable.bundle_lines(bundles)
    append_private(plan.run_dir / "bundles.txt", lines, plan.site.share_group)


class Backend(abc.ABC):
    """What every scheduler backend offers; ids are strings, calls are batched."""

    name: str = ""
    note: str = ""  # why the last submit left tasks out (no room in the scheduler), or ""

    def __init__(self, site: Site, runner: Runner = proc.run) -> None:
        self.site = site
        self._run = runner  # the one subprocess seam: tests substitute it

    @abc.abstractmethod
    def submit(
        self,
        plan: Plan,
        indices: Sequence[int] | None = None,
        *,
        queued: Mapping[int, str] | None = None,
    ) -> dict[int, str]:
        """Submit the plan's tasks (or only ``indices``) in as few calls as possible.

        ``queued``: scheduler ids of the run's tasks still queued, for a backend that chains
        a campaign's later tasks on them (SLURM dependencies). Returns the scheduler id of
        each submitted task, by task index; a task left out waits for room (:attr:`note`).
        """

    @abc.abstractmethod
    def find(self, plan: Plan) -> dict[int, str]:
        """Tasks of this run the scheduler already has (by run UUID): for reconciliation."""

    @abc.abstractmethod
    def status(self, ids: Sequence[str]) -> dict[str, TaskStatus]:
        """The scheduler's view of ``ids`` in ONE call; ids it does not know are left out."""

    @abc.abstractmethod
    def cancel(self, ids: Sequence[str]) -> None:
        """Cancel ``ids`` in one call."""

    @abc.abstractmethod
    def describe(self, plan: Plan) -> str:
        """What ``submit`` would run, as shell text to read (for ``--dry-run``)."""
