"""A three-step campaign on the testbed's SLURM and HTCondor, with nothing of ours alive.

make (6 tasks) -> check (per_task) -> sum (all), the jobs/hello-campaign payload natively.
The CLI submits and exits; the scheduler alone (SLURM dependencies, DAGMan) runs the steps.
Task 2 of make fails while a file exists: only its check stops, and sum does not run. One
of the two steps reports it ("upstream failed"), the other waits (``on_upstream_failure:
wait``, "waiting on upstream"): on SLURM check waits (SLURM drops it without running it),
on HTCondor sum waits (its wrapper finds the missing input). After the file is gone,
``resubmit --failed`` sends exactly make 2, check 8 and sum 12, and no succeeded task runs
again (attempt counts).

    tests/testbed/run-integration tests/integration/test_campaigns.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fcgtainer.runs import control, monitor
from fcgtainer.runs.journal import Journal
from fcgtainer.runs.rundir import attempts, read_marker
from fcgtainer.states import State

REPO = Path(__file__).resolve().parents[2]
SCHEDULERS = [
    pytest.param("slurm", marks=[pytest.mark.integration, pytest.mark.slurm]),
    pytest.param("htcondor", marks=[pytest.mark.integration, pytest.mark.htcondor]),
]
DEADLINE_S = 600.0  # a hang guard, not a performance threshold
RUNS: list[str] = []
CACHE = shutil.ignore_patterns("__pycache__")  # bytecode of the checkout: not ours to read


@pytest.fixture(params=SCHEDULERS)
def scheduler(request: pytest.FixtureRequest) -> Iterator[str]:
    """The scheduler under test; whatever the test's runs left queued is cancelled after."""
    yield request.param
    while RUNS:
        run_id = RUNS.pop()
        if request.param == "slurm":
            for step in ("make", "check", "sum"):
                name = f"fcg-hello-campaign-{step}-{run_id}"
                subprocess.run(["scancel", f"--name={name}"], capture_output=True, check=False)
        else:
            constraint = f'FcgtainerRun == "{run_id}"'
            subprocess.run(["condor_rm", "-constraint", constraint], capture_output=True)


def ours_alive(skip: int, where: Path) -> list[str]:
    """Command lines of fcgtainer CLI or supervisor processes for ``where`` (not ``skip``).

    The campaign's report, written by a job of the scheduler's after the last task (SLURM's
    report job, DAGMan's FINAL node), is the scheduler's work, not a process of ours.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == skip:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = " ".join(a.decode(errors="replace") for a in argv)
        if str(where) not in text or "fcgtainer.runs.report" in text:
            continue  # others may be testing on this machine; the report job
        if re.search(r"-m fcgtainer\b|bin/fcgtainer\b|fcgtainer\.backends\.local_runner", text):
            found.append(f"{entry.name}: {text}")
    return found


def wait_markers(run_dir: Path, indices: list[int]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not all(read_marker(run_dir, i) is not None for i in indices):
        assert time.monotonic() < deadline, "the campaign did not reach its last step"
        time.sleep(2)


def test_three_steps_run_alone_fail_one_slice_and_resubmit(
    shared_tmp_path: Path, scheduler: str
) -> None:
    work = shared_tmp_path
    base = (REPO / "sites" / f"testbed-{scheduler}.yaml").read_text()
    (work / "site.yaml").write_text(base.replace("~/fcgtainer-runs", str(work / "runs")))
    shutil.copytree(REPO / "jobs" / "hello-campaign", work / "hello-campaign", ignore=CACHE)
    waits = "check" if scheduler == "slurm" else "sum"
    yaml = work / "hello-campaign" / "job.yaml"
    needs = {"check": "needs: {make: per_task}", "sum": "needs: {check: all}"}[waits]
    yaml.write_text(yaml.read_text().replace(needs, needs + "\n    on_upstream_failure: wait", 1))
    flag = work / "broken"
    flag.touch()
    argv = [sys.executable, "-m", "fcgtainer", "submit", str(work / "hello-campaign")]
    argv += ["--site", str(work / "site.yaml"), "--set", "fail_step=make"]
    argv += ["--set", "fail_task=2", "--set", f"fail_if={flag}"]
    cli = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = cli.communicate(timeout=300)
    assert cli.returncode == 0, out
    run_id = re.search(r"submitted run (\w{8})", out)
    assert run_id, out
    journal = Journal()
    run = journal.run(run_id[1])
    RUNS.append(run.id)
    # the CLI is gone and nothing of ours runs: the scheduler drives the steps alone
    with pytest.raises(ProcessLookupError):
        os.kill(cli.pid, 0)
    assert ours_alive(os.getpid(), work) == []
    wait_markers(run.run_dir, [12])  # sum runs last (afterany / the DAG's last node)
    assert ours_alive(os.getpid(), work) == []
    tasks = monitor.refresh(journal, run)
    states = {t.index: t.status.state for t in tasks}
    print(f"\n{scheduler}: {monitor.step_counts(run, tasks)}")
    assert states[2] is State.FAILED and read_marker(run.run_dir, 2) == 3
    if waits == "check":  # SLURM drops check 8 (aftercorr); sum finds its marker missing
        assert states[8] is State.UPSTREAM_WAIT and read_marker(run.run_dir, 8) is None
        assert states[12] is State.UPSTREAM_FAILED and read_marker(run.run_dir, 12) == 88
    else:
        assert states[8] is State.UPSTREAM_FAILED
        assert states[12] is State.UPSTREAM_WAIT and read_marker(run.run_dir, 12) == 89
    ok = [i for i in range(12) if i not in (2, 8)]
    assert [states[i] for i in ok] == [State.SUCCEEDED] * len(ok)
    assert "upstream task" in (run.run_dir / "tasks" / "12" / "task.log").read_text()
    assert not (run.run_dir / "out" / "12" / "value.txt").exists()

    flag.unlink()  # the cause is fixed
    assert control.resubmit(journal, journal.run(run.id)) == 3
    wait_markers(run.run_dir, [2, 8])
    deadline = time.monotonic() + DEADLINE_S
    while True:
        tasks = monitor.refresh(journal, journal.run(run.id))
        if all(t.status.state.terminal for t in tasks) and read_marker(run.run_dir, 12) == 0:
            break
        assert time.monotonic() < deadline, monitor.step_counts(run, tasks)
        time.sleep(2)
    assert [t.status.state for t in tasks] == [State.SUCCEEDED] * 13
    assert [attempts(run.run_dir, i) for i in ok] == [1] * len(ok)  # none ran again
    assert attempts(run.run_dir, 2) == 2
    total = (run.run_dir / "out" / "12" / "value.txt").read_text()
    assert int(total) == sum(n * n for n in range(6))


@pytest.mark.integration
@pytest.mark.slurm
def test_cache_on_slurm_no_call_when_unchanged_and_only_affected_tasks_after_a_change(
    shared_tmp_path: Path,
) -> None:
    """Identical submit: no sbatch at all; a param of check only: check and sum go again."""
    from collections.abc import Sequence
    from typing import Any

    from fcgtainer import proc
    from fcgtainer.backends.slurm import SlurmBackend
    from fcgtainer.runs import submit as runs

    work = shared_tmp_path
    base = (REPO / "sites" / "testbed-slurm.yaml").read_text()
    (work / "site.yaml").write_text(base.replace("~/fcgtainer-runs", str(work / "runs")))
    shutil.copytree(REPO / "jobs" / "hello-campaign", work / "hello-campaign", ignore=CACHE)
    job, site = str(work / "hello-campaign"), str(work / "site.yaml")
    calls: list[str] = []

    def counted(argv: Sequence[str], **kwargs: Any) -> proc.Completed:
        calls.append(Path(argv[0]).name)
        return proc.run(argv, **kwargs)

    journal = Journal()

    def run_to_the_end(sets: list[str]) -> tuple[runs.Submitted, int]:
        plan = runs.plan_run(job, site, sets)
        RUNS.append(plan.run_id)
        before = len(calls)
        done = runs.submit(plan, journal, SlurmBackend(plan.site, runner=counted))
        sbatch = calls[before:].count("sbatch")
        deadline = time.monotonic() + DEADLINE_S
        while not all(
            t.status.state.terminal for t in monitor.refresh(journal, journal.run(plan.run_id))
        ):
            assert time.monotonic() < deadline
            time.sleep(2)
        return done, sbatch

    first, sbatch = run_to_the_end([])
    assert sbatch == 3 + 1 and not first.cached  # an array per step, then the report job
    again, sbatch = run_to_the_end([])
    assert sbatch == 0 and len(again.cached) == 13 and calls.count("sbatch") == 4
    changed, sbatch = run_to_the_end(["offset=1"])
    assert sbatch == 2 + 1 and sorted(changed.cached) == list(range(6))
    total = (changed.plan.run_dir / "out" / "12" / "value.txt").read_text()
    assert int(total) == 55 + 6
    tasks = journal.tasks(changed.plan.run_id)
    assert [t.status.state for t in tasks] == [State.SUCCEEDED] * 13


def test_bundles_each_task_its_marker_and_log_a_failed_one_rerun_alone(
    shared_tmp_path: Path, scheduler: str
) -> None:
    """make and check in bundles of 3 (2 array tasks or jobs each, not 6): task 2 fails
    inside its bundle while 0 and 1 succeed beside it; every task has its own marker and
    log; the resubmit reruns make 2, check 8 and sum 12 and nothing else (attempt counts)."""
    work = shared_tmp_path
    base = (REPO / "sites" / f"testbed-{scheduler}.yaml").read_text()
    (work / "site.yaml").write_text(base.replace("~/fcgtainer-runs", str(work / "runs")))
    shutil.copytree(REPO / "jobs" / "hello-campaign", work / "hello-campaign", ignore=CACHE)
    yaml = work / "hello-campaign" / "job.yaml"
    text = yaml.read_text().replace("  make: {}", "  make: {bundle: 3}")
    yaml.write_text(
        text.replace("    needs: {make: per_task}", "    needs: {make: per_task}\n    bundle: 3")
    )
    flag = work / "broken"
    flag.touch()
    from fcgtainer.runs import submit as runs

    plan = runs.plan_run(
        str(work / "hello-campaign"),
        str(work / "site.yaml"),
        ["fail_step=make", "fail_task=2", f"fail_if={flag}"],
    )
    journal = Journal()
    RUNS.append(plan.run_id)
    done = runs.submit(plan, journal)
    ids = {t.index: t.backend_id for t in journal.tasks(plan.run_id)}
    assert ids[0] == ids[1] == ids[2] != ids[3] == ids[4] == ids[5]  # make: 2 array tasks
    assert len(set(ids.values())) == 2 + 2 + 1, done
    wait_markers(plan.run_dir, [12])
    tasks = monitor.refresh(journal, journal.run(plan.run_id))
    states = {t.index: t.status.state for t in tasks}
    assert states[2] is State.FAILED and read_marker(plan.run_dir, 2) == 3
    assert states[8] is State.UPSTREAM_FAILED and states[12] is State.UPSTREAM_FAILED
    ok = [i for i in range(12) if i not in (2, 8)]
    assert [states[i] for i in ok] == [State.SUCCEEDED] * len(ok)
    for i in range(13):  # each its own marker and log, whatever its bundle did
        log = (plan.run_dir / "tasks" / str(i) / "task.log").read_text()
        said = "not run: upstream task" if i in (8, 12) else f"task {i} attempt 1 "
        assert said in log and read_marker(plan.run_dir, i) is not None, (i, log)

    flag.unlink()
    assert control.resubmit(journal, journal.run(plan.run_id)) == 3
    deadline = time.monotonic() + DEADLINE_S
    while True:
        tasks = monitor.refresh(journal, journal.run(plan.run_id))
        if all(t.status.state.terminal for t in tasks) and read_marker(plan.run_dir, 12) == 0:
            break
        assert time.monotonic() < deadline, monitor.step_counts(journal.run(plan.run_id), tasks)
        time.sleep(2)
    assert [t.status.state for t in tasks] == [State.SUCCEEDED] * 13
    assert [attempts(plan.run_dir, i) for i in ok] == [1] * len(ok)  # none ran again
    assert attempts(plan.run_dir, 2) == 2


# each task: its container (PID namespace and its init's start time: one per container start;
# a namespace's number is reused once it is gone), what its /tmp held when
# it started (the run directory's bind under /tmp, nothing a task left), its environment; task 4 fails on its first attempt (noting its namespace)
SHARED_START = """\
out=$FCGTAINER_OUT
if [ "$FCGTAINER_TASK" = 4 ] && [ ! -e "$out/first" ]; then
    echo "$(readlink /proc/self/ns/pid) $(cut -d' ' -f22 /proc/1/stat)" > "$out/first"; exit 3
fi
echo "$(readlink /proc/self/ns/pid) $(cut -d' ' -f22 /proc/1/stat)" > "$out/pidns"; ls -A /tmp > "$out/tmp_seen"; touch /tmp/left
env > "$out/env"
"""


@pytest.mark.apptainer
@pytest.mark.fuse
def test_a_bundles_tasks_share_one_container_start(
    scheduler: str, shared_tmp_path: Path, smoke_image: Path
) -> None:
    """6 tasks in the smoke image, bundles of 3 on the real SLURM or HTCondor and Apptainer:
    two scheduler jobs; the tasks of a bundle run in one container (one PID namespace per
    bundle), each with its own environment and an empty /tmp; task 4 fails beside its
    bundle's others and, resubmitted alone, runs in a container of its own; no apptainer
    instance is left running."""
    work = shared_tmp_path
    base = (REPO / "sites" / f"testbed-{scheduler}.yaml").read_text()
    site = base.replace("~/fcgtainer-runs", str(work / "runs"))
    (work / "site.yaml").write_text(site.replace("runtime: native", "runtime: apptainer"))
    job = work / "shared" / "job.yaml"
    job.parent.mkdir()
    job.write_text(
        "name: shared\n"
        f"command: [sh, -c, {json.dumps(SHARED_START)}]\n"
        "matrix: {n: {range: [0, 6]}}\n"
        "bundle: 3\n"
    )
    from fcgtainer.runs import submit as runs

    plan = runs.plan_run(str(job.parent), str(work / "site.yaml"), [], image=str(smoke_image))
    journal = Journal()
    RUNS.append(plan.run_id)
    try:
        runs.submit(plan, journal)
        ids = {t.index: t.backend_id for t in journal.tasks(plan.run_id)}
        assert ids[0] == ids[1] == ids[2] != ids[3] == ids[4] == ids[5]
        wait_markers(plan.run_dir, list(range(6)))
        assert [read_marker(plan.run_dir, i) for i in range(6)] == [0, 0, 0, 0, 3, 0]
        out = plan.run_dir / "out"
        pidns = {i: (out / str(i) / "pidns").read_text() for i in (0, 1, 2, 3, 5)}
        pidns[4] = (out / "4" / "first").read_text()
        assert pidns[0] == pidns[1] == pidns[2] != pidns[3] == pidns[4] == pidns[5], pidns
        for i in (0, 1, 2, 3, 5):
            seen = (out / str(i) / "tmp_seen").read_text().split()  # its own /tmp
            assert "left" not in seen, (i, seen)
            env = (out / str(i) / "env").read_text().splitlines()
            assert [kv for kv in env if kv.startswith("FCGTAINER_TASK=")] == [f"FCGTAINER_TASK={i}"]
            log = (plan.run_dir / "tasks" / str(i) / "task.log").read_text()
            assert "in its bundle's container" in log and f"task {i} attempt 1 " in log
        wait_no_instance()
        tasks = monitor.refresh(journal, journal.run(plan.run_id))
        deadline = time.monotonic() + DEADLINE_S
        while not all(t.status.state.terminal for t in tasks):
            assert time.monotonic() < deadline, "the bundles' jobs did not end"
            time.sleep(1)
            tasks = monitor.refresh(journal, journal.run(plan.run_id))
        assert [t.status.state for t in tasks][3:5] == [State.SUCCEEDED, State.FAILED]

        assert control.resubmit(journal, journal.run(plan.run_id)) == 1
        deadline = time.monotonic() + DEADLINE_S
        while read_marker(plan.run_dir, 4) != 0:
            assert time.monotonic() < deadline, "task 4 was not rerun"
            time.sleep(1)
        assert (out / "4" / "pidns").read_text() not in pidns.values()  # a start of its own
        assert [attempts(plan.run_dir, i) for i in range(6)] == [1, 1, 1, 1, 2, 1]
        wait_no_instance()
    finally:
        if scheduler == "slurm":
            subprocess.run(["scancel", f"--name={plan.name}"], capture_output=True, check=False)


def wait_no_instance() -> None:
    """Until no apptainer instance of a bundle runs (the bundle stops it as it ends)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        listed = subprocess.run(
            ["apptainer", "instance", "list"], capture_output=True, text=True, check=True
        ).stdout
        if "fcgtainer-" not in listed:
            return
        assert time.monotonic() < deadline, f"an instance outlived its bundle:\n{listed}"
        time.sleep(1)
