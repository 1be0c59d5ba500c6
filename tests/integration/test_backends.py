"""The SLURM and HTCondor backends against the real schedulers of the testbed.

Run inside the testbed as the ordinary user::

    tests/testbed/run-integration tests/integration/test_backends.py
    # or, with the testbed already up:
    tests/testbed/testbed exec --user -- bash -c \
        'cd /work/main && pytest -p no:cacheprovider tests/integration/test_backends.py'

Each test is parametrised over both schedulers. Scheduler calls are counted through the
backends' seams (``_run`` for SLURM, ``_schedd`` for HTCondor). The markers make
tests/integration/conftest.py skip a test whose scheduler is missing, or fail it when the
testbed is required (``CI=true``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from fcgtainer import proc
from fcgtainer.backends.base import Backend
from fcgtainer.backends.htcondor import HTCondorBackend
from fcgtainer.backends.slurm import SlurmBackend
from fcgtainer.config.site import Site
from fcgtainer.plan.tasks import Plan
from fcgtainer.runs import control, monitor
from fcgtainer.runs import submit as runs
from fcgtainer.runs.journal import Journal, RunRecord, TaskRecord
from fcgtainer.runs.rundir import attempts, log_path
from fcgtainer.states import State

REPO = Path(__file__).resolve().parent.parent.parent
SCHEDULERS = [
    pytest.param("slurm", marks=[pytest.mark.integration, pytest.mark.slurm]),
    pytest.param("htcondor", marks=[pytest.mark.integration, pytest.mark.htcondor]),
]
DEADLINE_S = 900.0  # a hang guard, not a performance threshold


@pytest.fixture(params=SCHEDULERS)
def scheduler(request: pytest.FixtureRequest) -> str:
    """The scheduler under test (conftest skips, or fails under CI=true, when it is missing)."""
    name: str = request.param
    return name


SUBMITTED: list[Plan] = []


@pytest.fixture(autouse=True)
def _no_stray_jobs() -> Iterator[None]:
    """Cancel whatever the test's runs left queued (only those: the queue may be shared)."""
    yield
    while SUBMITTED:
        plan = SUBMITTED.pop()
        if plan.site.scheduler == "slurm":
            subprocess.run(["scancel", f"--name={plan.name}"], capture_output=True, check=False)
        else:
            constraint = f'FcgtainerRun == "{plan.run_id}"'
            subprocess.run(["condor_rm", "-constraint", constraint], capture_output=True)


class Counted:
    """Counts scheduler calls made by one backend, by tool or schedd method."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def mark(self) -> int:
        return len(self.calls)

    def since(self, mark: int) -> list[str]:
        return self.calls[mark:]


class CountingSchedd:
    """A real schedd whose calls are counted."""

    def __init__(self, real: Any, counter: Counted) -> None:
        self._real, self._counter = real, counter

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._counter.calls.append(name)
            return attr(*args, **kwargs)

        return call


def counting_backend(site: Site, counter: Counted) -> Backend:
    """The site's backend with every scheduler call counted."""
    if site.scheduler == "slurm":

        def runner(argv: Sequence[str], **kwargs: Any) -> proc.Completed:
            counter.calls.append(Path(argv[0]).name)
            return proc.run(argv, **kwargs)

        return SlurmBackend(site, runner=runner)
    backend = HTCondorBackend(site)
    real = backend._schedd
    backend._schedd = lambda: CountingSchedd(real(), counter)  # type: ignore[method-assign]
    return backend


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> Counted:
    """Every backend made by status, cancel and resubmit counts into this."""
    calls = Counted()
    made = lambda site: counting_backend(site, calls)  # noqa: E731
    monkeypatch.setattr(monitor, "get_backend", made)
    monkeypatch.setattr(control, "get_backend", made)
    return calls


@pytest.fixture
def workspace(shared_tmp_path: Path, scheduler: str) -> Path:
    """A site profile (runs under a path with a space and a quote) and the test jobs."""
    tmp_path = shared_tmp_path
    runs_dir = tmp_path / "runs a 0 'q'"
    base = (REPO / "sites" / f"testbed-{scheduler}.yaml").read_text()
    (tmp_path / "site.yaml").write_text(base.replace("~/fcgtainer-runs", str(runs_dir)))
    # without __pycache__: a local native run leaves it private to its owner (umask 077)
    shutil.copytree(
        REPO / "jobs" / "hello" / "hello",
        tmp_path / "hello" / "hello",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (tmp_path / "ckpt").mkdir()
    shutil.copy(REPO / "tests" / "data" / "checkpointing" / "ckpt.py", tmp_path / "ckpt")
    return tmp_path


def write_job(
    workspace: Path,
    name: str,
    tasks: int,
    *,
    command: str = "hello",
    extra: str = "",
    walltime: str = "00:10:00",
) -> Path:
    """A job of ``tasks`` tasks running the hello or the ckpt payload."""
    job_dir = workspace / ("hello" if command == "hello" else "ckpt")
    path = job_dir / f"{name}.yaml"
    path.write_text(
        textwrap.dedent(f"""\
            name: {name}
            command: [python3, -m, {command}, --spec, "{{spec}}"]
            params: {{greeting: hello, sleep: 0, fail_task: -1, steps: 0, pause: 0.5}}
            matrix:
              n: {{range: [0, {tasks}]}}
            resources: {{cpus: 1, memory: 64MiB, walltime: "{walltime}"}}
            """)
        + extra
    )
    return path


def submit(
    workspace: Path, job: Path, sets: Sequence[str] = (), *, backend: Backend | None = None
) -> tuple[Journal, RunRecord, Plan]:
    """Plan and submit a run as the CLI does; returns the journal, record and plan."""
    plan = runs.plan_run(str(job), str(workspace / "site.yaml"), list(sets))
    SUBMITTED.append(plan)
    journal = Journal()
    done = runs.submit(plan, journal, backend)
    return journal, journal.run(done.plan.run_id), done.plan


def wait(
    journal: Journal,
    run: RunRecord,
    until: Callable[[list[TaskRecord]], bool] | None = None,
    on_poll: Callable[[list[TaskRecord]], None] | None = None,
) -> list[TaskRecord]:
    """Poll with a short backoff until ``until`` holds (default: every task finished)."""
    done = until or (lambda tasks: all(t.status.state.terminal for t in tasks))
    deadline = time.monotonic() + DEADLINE_S
    delay = 0.5
    while True:
        tasks = monitor.refresh(journal, run)
        if on_poll:
            on_poll(tasks)
        if done(tasks):
            return tasks
        assert time.monotonic() < deadline, (
            f"run did not get there: {Counter(t.status for t in tasks)}"
        )
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)


def scheduler_jobs(scheduler: str, plan: Plan) -> set[str]:
    """The distinct scheduler jobs (array jobs / clusters) carrying the run's UUID."""
    if scheduler == "slurm":
        out = proc.run(
            ["squeue", "-h", "--states=all", "--me", f"--name={plan.name}", "--format=%F"]
        ).stdout
        return set(out.split())
    import htcondor2  # type: ignore[import-untyped,import-not-found,unused-ignore]

    constraint = f'FcgtainerRun == "{plan.run_id}"'
    schedd = htcondor2.Schedd()
    ads = schedd.query(constraint=constraint, projection=["ClusterId"])
    ads += schedd.history(constraint=constraint, projection=["ClusterId"])
    return {str(ad["ClusterId"]) for ad in ads}


def test_300_tasks_one_submit_call_and_one_call_per_poll(
    workspace: Path, scheduler: str, counter: Counted
) -> None:
    """300 tasks in one scheduler call; every task completes; status polls are batched."""
    job = write_job(workspace, "many", 300)
    plan = runs.plan_run(str(job), str(workspace / "site.yaml"), [])
    SUBMITTED.append(plan)
    backend = counting_backend(plan.site, counter)
    journal = Journal()
    done = runs.submit(plan, journal, backend)
    submit_calls = [c for c in counter.calls if c in ("sbatch", "submit")]
    assert submit_calls == ["sbatch" if scheduler == "slurm" else "submit"]
    assert len(done.ids) == 300
    per_poll: list[list[str]] = []

    def count(_: list[TaskRecord]) -> None:
        per_poll.append(counter.since(marks[-1]))
        marks.append(counter.mark())

    marks = [counter.mark()]
    tasks = wait(journal, journal.run(plan.run_id), on_poll=count)
    assert [t.status.state for t in tasks] == [State.SUCCEEDED] * 300
    status_calls = [Counter(p) for p in per_poll]
    shapes = Counter(
        " + ".join(f"{n} {k}" for k, n in sorted(c.items())) or "none" for c in status_calls
    )
    print(f"\n{scheduler}: {len(per_poll)} polls; scheduler calls per poll: {dict(shapes)}")
    if scheduler == "slurm":
        assert all(c["squeue"] <= 1 and c["sacct"] <= 1 for c in status_calls)
    else:
        assert all(c["query"] <= 1 and c["history"] <= 1 for c in status_calls)
    assert all(sum(c.values()) <= 2 for c in status_calls)


def test_failed_task_shows_exit_3_and_resubmit_reruns_only_it(
    workspace: Path, scheduler: str, counter: Counted
) -> None:
    """Exit 3 is FAILED with code 3 and its log; resubmit --failed sends only that task."""
    job = write_job(workspace, "fails", 4)
    journal, run, plan = submit(workspace, job, ["fail_task=2"])
    tasks = wait(journal, run)
    assert [t.status.state for t in tasks] == [State.SUCCEEDED] * 2 + [
        State.FAILED,
        State.SUCCEEDED,
    ]
    assert tasks[2].status.exit_code == 3
    assert "failing as asked" in log_path(plan.run_dir, 2).read_text()
    mark = counter.mark()
    assert control.resubmit(journal, run) == 1
    assert [c for c in counter.since(mark) if c in ("sbatch", "submit")] == [
        "sbatch" if scheduler == "slurm" else "submit"
    ]
    tasks = wait(journal, run)
    assert tasks[2].status.state is State.FAILED and tasks[2].status.exit_code == 3
    assert [attempts(plan.run_dir, i) for i in range(4)] == [1, 1, 2, 1]
    assert log_path(plan.run_dir, 2).read_text().count("failing as asked") == 2


CHECKPOINT_JOB = """\
checkpoint: {enabled: true, signal_margin: 20}
"""


def test_checkpointed_task_is_requeued_resumes_and_succeeds(
    workspace: Path, scheduler: str
) -> None:
    """Walltime (SLURM) or eviction (HTCondor): checkpoint, requeue, resume, succeed."""
    walltime = "00:01:00" if scheduler == "slurm" else "00:10:00"
    job = write_job(workspace, "ckpt", 1, command="ckpt", extra=CHECKPOINT_JOB, walltime=walltime)
    steps = "steps=100" if scheduler == "slurm" else "steps=30"
    journal, run, plan = submit(workspace, job, [steps, "pause=0.5"])
    seen: list[State] = []
    checkpoint = plan.out_dir(0) / "checkpoint.json"
    if scheduler == "htcondor":
        wait(journal, run, until=lambda _: checkpoint.exists())
        job_id = journal.tasks(run.id)[0].backend_id
        assert job_id
        proc.run(["condor_vacate_job", job_id])
    tasks = wait(journal, run, on_poll=lambda ts: seen.append(ts[0].status.state))
    assert tasks[0].status.state is State.SUCCEEDED
    assert State.REQUEUED in seen and State.FAILED not in seen, seen
    log = log_path(plan.run_dir, 0).read_text()
    assert "attempt 1 " in log and "attempt 2 " in log, "the first attempt's log is kept"
    assert "signalled, checkpoint at step" in log
    resumed = [line for line in log.splitlines() if "resumed from step" in line]
    assert len(resumed) >= 2 and not resumed[-1].endswith("step 0"), "resumed from checkpoint"
    codes = [line.split()[-1] for line in (plan.task_dir(0) / "attempts").read_text().splitlines()]
    assert codes[0] == "85" and codes[-1] == "0"


class Crash(Exception):
    """The CLI dies right after the scheduler accepted the job."""


def test_crash_after_accept_then_rerun_leaves_one_job(
    workspace: Path, scheduler: str, counter: Counted
) -> None:
    """A crash between the scheduler's answer and the journal: the rerun adopts the job."""
    job = write_job(workspace, "crash", 3)
    plan = runs.plan_run(str(job), str(workspace / "site.yaml"), [])
    SUBMITTED.append(plan)
    backend = counting_backend(plan.site, counter)
    real_submit = backend.submit

    def accept_then_crash(p: Plan, indices: Sequence[int] | None = None) -> dict[int, str]:
        real_submit(p, indices)
        raise Crash

    backend.submit = accept_then_crash  # type: ignore[method-assign]
    journal = Journal()
    with pytest.raises(Crash):
        runs.submit(plan, journal, backend)
    again = runs.plan_run(str(job), str(workspace / "site.yaml"), [])
    assert again.run_id != plan.run_id
    done = runs.submit(again, journal, counting_backend(again.site, counter))
    assert done.adopted and done.plan.run_id == plan.run_id
    assert len(scheduler_jobs(scheduler, plan)) == 1
    tasks = wait(journal, journal.run(plan.run_id))
    assert all(t.status.state is State.SUCCEEDED for t in tasks)


def test_timed_out_submit_that_went_through_leaves_one_job(
    workspace: Path, scheduler: str, counter: Counted
) -> None:
    """The submit call 'times out' after submitting, and so does the first lookup."""
    job = write_job(workspace, "slowsubmit", 2)
    plan = runs.plan_run(str(job), str(workspace / "site.yaml"), [])
    SUBMITTED.append(plan)
    backend = counting_backend(plan.site, counter)
    failing = {"find": 1}
    if isinstance(backend, SlurmBackend):
        real_run = backend._run

        def slow(argv: Sequence[str], **kwargs: Any) -> proc.Completed:
            done = real_run(argv, **kwargs)
            if Path(argv[0]).name == "sbatch":
                raise proc.CommandTimeout(argv, -1, stdout=done.stdout, stderr="timed out")
            return done

        backend._run = slow
    else:
        real_schedd = backend._schedd

        class Slow:
            def __init__(self, real: Any) -> None:
                self._real = real

            def __getattr__(self, name: str) -> Any:
                return getattr(self._real, name)

            def submit(self, *args: Any, **kwargs: Any) -> Any:
                import htcondor2  # type: ignore[import-untyped,import-not-found,unused-ignore]

                self._real.submit(*args, **kwargs)
                raise htcondor2.HTCondorException("Failed to commit: timed out")

        backend._schedd = lambda: Slow(real_schedd())  # type: ignore[method-assign]
    real_find = backend.find

    def find_times_out(p: Plan) -> dict[int, str]:
        if failing["find"]:
            failing["find"] -= 1
            raise proc.CommandTimeout(["squeue"], -1, stderr="timed out")
        return real_find(p)

    backend.find = find_times_out  # type: ignore[method-assign]
    journal = Journal()
    with pytest.raises(proc.CommandTimeout):
        runs.submit(plan, journal, backend)
    again = runs.plan_run(str(job), str(workspace / "site.yaml"), [])
    done = runs.submit(again, journal, counting_backend(again.site, counter))
    assert done.adopted and done.plan.run_id == plan.run_id
    assert len(scheduler_jobs(scheduler, plan)) == 1
    tasks = wait(journal, journal.run(plan.run_id))
    assert all(t.status.state is State.SUCCEEDED for t in tasks)


def test_job_removed_behind_our_back_is_lost_or_cancelled(
    workspace: Path, scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scancel / condor_rm outside fcgtainer: never SUCCEEDED."""
    monkeypatch.setenv("FCGTAINER_LOST_GRACE", "5")
    job = write_job(workspace, "removed", 2)
    journal, run, _ = submit(workspace, job, ["sleep=120"])
    wait(journal, run, until=lambda ts: all(t.status.state is State.RUNNING for t in ts))
    ids = [t.backend_id for t in journal.tasks(run.id) if t.backend_id]
    if scheduler == "slurm":
        proc.run(["scancel", *ids])
    else:
        proc.run(["condor_rm", *ids])
    tasks = wait(journal, run)
    assert {t.status.state for t in tasks} <= {State.LOST, State.CANCELLED}


@pytest.mark.integration
@pytest.mark.slurm
def test_slurm_without_accounting_uses_markers_then_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where sacct is disabled, a task squeue forgot and with no marker ends LOST."""
    conf = tmp_path / "slurm.conf"
    text = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")).read_text()
    conf.write_text("\n".join(x for x in text.splitlines() if "AccountingStorage" not in x))
    monkeypatch.setenv("SLURM_CONF", str(conf))
    monkeypatch.setenv("FCGTAINER_LOST_GRACE", "0")
    site = Site.model_validate({"scheduler": "slurm", "runs_dir": str(tmp_path / "runs")})
    backend = SlurmBackend(site)
    assert backend.status(["999999_0"]) == {}
    assert backend.accounting is False, "sacct said accounting is disabled"
    journal = Journal()
    journal.create_run(
        "gone",
        job="hello",
        site="testbed",
        scheduler="slurm",
        run_dir=tmp_path / "runs" / "gone",
        plan_key="k",
        manifest={"site": site.model_dump(mode="json")},
        task_names=["n=0"],
    )
    journal.set_backend_ids("gone", {0: "999999_0"})
    run = journal.run("gone")
    first = monitor.refresh(journal, run)
    assert first[0].status.state is State.UNKNOWN
    time.sleep(0.1)
    assert monitor.refresh(journal, run)[0].status.state is State.LOST
