"""A 300-task run as a late-materialisation factory on the testbed's HTCondor.

The site profile sets ``factory_above: 100`` and ``max_idle: 50``: the run goes to the
schedd as one factory cluster, the schedd materialises its procs as earlier ones start,
and ``status`` shows the procs still to come as pending (never lost, even with a lost-grace
of a few seconds). Every task runs exactly once; the schedd never holds more than
``max_idle`` idle procs of the run, nor all 300 at once.

    tests/testbed/run-integration tests/integration/test_factory.py
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fcgtainer.backends.htcondor import NOT_MATERIALISED
from fcgtainer.runs import monitor
from fcgtainer.runs import submit as runs
from fcgtainer.runs.journal import Journal
from fcgtainer.runs.rundir import attempts, read_marker
from fcgtainer.states import State

REPO = Path(__file__).resolve().parents[2]
TASKS = 300
MAX_IDLE = 50
DEADLINE_S = 900.0  # a hang guard, not a performance threshold
pytestmark = [pytest.mark.integration, pytest.mark.htcondor]
RUNS: list[str] = []


@pytest.fixture(autouse=True)
def _no_stray_jobs() -> Iterator[None]:
    """Remove whatever the test's run left queued (only its own: the queue may be shared)."""
    yield
    while RUNS:
        constraint = f'FcgtainerRun == "{RUNS.pop()}"'
        subprocess.run(["condor_rm", "-constraint", constraint], capture_output=True)


@pytest.fixture
def workspace(shared_tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The testbed's HTCondor profile with a small factory threshold, and the hello job."""
    site = yaml.safe_load((REPO / "sites" / "testbed-htcondor.yaml").read_text())
    site["runs_dir"] = str(shared_tmp_path / "runs")
    site["htcondor"].update({"factory_above": 100, "max_idle": MAX_IDLE})
    (shared_tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    shutil.copytree(
        REPO / "jobs" / "hello" / "hello",
        shared_tmp_path / "hello" / "hello",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (shared_tmp_path / "hello" / "many.yaml").write_text(
        textwrap.dedent(f"""\
            name: factory-many
            command: [python3, -m, hello, --spec, "{{spec}}"]
            params: {{greeting: hello, sleep: 0, fail_task: -1}}
            matrix:
              n: {{range: [0, {TASKS}]}}
            resources: {{cpus: 1, memory: 64MiB, walltime: "00:10:00"}}
            """)
    )
    # an unmaterialised task reported as absent would turn LOST within a poll or two
    monkeypatch.setenv("FCGTAINER_LOST_GRACE", "5")
    return shared_tmp_path


def queued(run_id: str) -> Counter[int]:
    """The run's procs in the schedd's queue, counted by JobStatus (1 idle, 2 running...)."""
    import htcondor2  # type: ignore[import-untyped,import-not-found,unused-ignore]

    ads = htcondor2.Schedd().query(
        constraint=f'FcgtainerRun == "{run_id}"', projection=["ProcId", "JobStatus"]
    )
    return Counter(int(ad["JobStatus"]) for ad in ads)


def test_300_tasks_as_a_factory_each_once_never_more_than_max_idle_idle(
    workspace: Path,
) -> None:
    """One factory cluster; unmaterialised tasks pending; every task once; idle <= max_idle."""
    import htcondor2  # type: ignore[import-untyped,import-not-found,unused-ignore]

    plan = runs.plan_run(str(workspace / "hello" / "many.yaml"), str(workspace / "site.yaml"), [])
    RUNS.append(plan.run_id)
    journal = Journal()
    done = runs.submit(plan, journal)
    assert len(done.ids) == TASKS and len({i.split(".")[0] for i in done.ids.values()}) == 1
    cluster = next(iter(done.ids.values())).split(".")[0]
    assert done.ids == {i: f"{cluster}.{i}" for i in range(TASKS)}, "proc n is task n"

    run = journal.run(plan.run_id)
    most_idle = most_queued = 0
    seen_states: Counter[State] = Counter()
    waiting_seen = False
    deadline = time.monotonic() + DEADLINE_S
    while True:
        in_queue = queued(plan.run_id)
        most_idle = max(most_idle, in_queue[1] + in_queue[5])  # held counts as idle here
        most_queued = max(most_queued, sum(in_queue.values()))
        tasks = monitor.refresh(journal, run)
        seen_states.update(t.status.state for t in tasks)
        waiting_seen |= any(t.status.reason == NOT_MATERIALISED for t in tasks)
        assert not any(t.status.state is State.LOST for t in tasks), seen_states
        if all(t.status.state.terminal for t in tasks):
            break
        assert time.monotonic() < deadline, f"the run did not finish: {seen_states}"
        time.sleep(1.0)

    print(f"\nmost idle at once: {most_idle}; most in the queue: {most_queued}; {seen_states}")
    assert [t.status.state for t in tasks] == [State.SUCCEEDED] * TASKS
    assert [attempts(plan.run_dir, i) for i in range(TASKS)] == [1] * TASKS, "each exactly once"
    assert all(read_marker(plan.run_dir, i) == 0 for i in range(TASKS))
    assert waiting_seen, "status never showed a task waiting to be materialised"
    assert most_idle <= MAX_IDLE, f"{most_idle} idle procs: max_idle did not hold"
    assert most_queued < TASKS, "every proc was in the queue at once: not a factory"

    # A job's marker is written before it leaves the queue: the schedd moves it to its
    # history a moment later, so the last procs may not be there yet.
    history_deadline = time.monotonic() + 120.0  # a hang guard
    while True:
        ads = list(
            htcondor2.Schedd().history(
                constraint=f"ClusterId == {cluster}",
                projection=["ProcId", "FcgtainerTask"],
                match=TASKS + 1,
            )
        )
        if len(ads) >= TASKS or time.monotonic() > history_deadline:
            break
        time.sleep(1.0)
    assert sorted(int(a["ProcId"]) for a in ads) == list(range(TASKS)), "one proc per task"
    assert all(int(a["FcgtainerTask"]) == int(a["ProcId"]) for a in ads)
