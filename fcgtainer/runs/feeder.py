"""The feeder of a run larger than the queue: ``python -m fcgtainer.runs.feeder RUN_ID``.

When SLURM has no room for every task (``MaxJobCount``, a QOS's ``MaxSubmitJobs``), submit
sends what fits and journals the rest as waiting (run phase ``feeding``). So that the run
still goes to its end while the user is logged out, submit then starts this feeder,
detached like the local backend's supervisor: every ``slurm.feed_every`` seconds it does
what ``fcgtainer resubmit --waiting RUN`` does (submits as many waiting tasks as fit,
chained on those still queued), and it exits once nothing waits or the run is cancelled.

One feeder per run: it holds ``RUN_DIR/feeder.lock`` for its life (a second one exits at
once); its log is ``RUN_DIR/feeder.log``. A login node that kills a user's processes at
logout kills it too: then ``resubmit --waiting`` from cron does the same.

Why a process on the submit host and not SLURM itself: held or chained arrays count
against the same limits, and a job that submits the next chunk would need fcgtainer and
the journal on the compute nodes (docs/scale.md).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fcgtainer.errors import FcgError
from fcgtainer.runs import control
from fcgtainer.runs.journal import Journal, RunRecord
from fcgtainer.runs.submit import FEEDING

LOCK = "feeder.lock"
LOG = "feeder.log"


def start(run: RunRecord) -> int:
    """Start the run's feeder in the background (its own session); its pid."""
    fd = os.open(run.run_dir / LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "fcgtainer.runs.feeder", run.id],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    return child.pid


MAX_FAILURES = 100  # rounds in a row that could not submit: the feeder gives up, says so


def feed(
    journal: Journal, run_id: str, interval: float, sleep: Callable[[float], None] = time.sleep
) -> int:
    """Feed the run until nothing waits; how many tasks were submitted in all."""
    total = failures = 0
    while True:
        run = journal.run(run_id)
        if run.phase != FEEDING:
            return total
        try:
            sent = control.resubmit(journal, run, states=set(), waiting=True, feeder=False)
            failures = 0
        except FcgError as exc:  # e.g. the controller did not answer: try again later
            failures += 1
            print(f"{time.strftime('%H:%M:%S')} not fed: {exc}", flush=True)
            if failures >= MAX_FAILURES:
                print(
                    f"giving up after {failures} failed rounds: run "
                    f"`fcgtainer resubmit --waiting {run_id[:8]}` once the cause is fixed",
                    flush=True,
                )
                return total
            sent = 0
        if sent:
            total += sent
            print(f"{time.strftime('%H:%M:%S')} submitted {sent} waiting task(s)", flush=True)
        if journal.run(run_id).phase != FEEDING:
            return total
        sleep(interval)


def main(argv: list[str]) -> int:
    """Hold the run's feeder lock and feed it; 0 when done (or another feeder has it)."""
    journal = Journal()
    run = journal.run(argv[0])
    lock = os.open(Path(run.run_dir) / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # this run has its feeder already
    if run.phase != FEEDING:
        return 0
    from fcgtainer.runs import monitor

    interval = float(monitor.site_of(run).slurm.feed_every)
    print(f"{time.strftime('%H:%M:%S')} feeding run {run.id[:8]} every {interval:g} s", flush=True)
    total = feed(journal, run.id, interval)
    print(f"{time.strftime('%H:%M:%S')} done: {total} task(s) fed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
