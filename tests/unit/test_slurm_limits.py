"""SLURM's size limits: parsing, the split of big runs into arrays, feeding what waits."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from fcgtainer import proc
from fcgtainer.backends.slurm import SlurmBackend, render_sbatch
from fcgtainer.backends.slurm_limits import (
    Limits,
    Usage,
    chunks,
    config_limits,
    fit,
    has_accounting,
    merge_limits,
    parse_assoc,
    parse_config,
    parse_qos,
    parse_usage,
    plan_arrays,
    query_limits,
    report,
    room,
)
from fcgtainer.config.job import Job
from fcgtainer.config.site import Site
from fcgtainer.errors import CommandError
from fcgtainer.plan.tasks import Plan, make_plan

pytestmark = pytest.mark.unit
DATA = Path(__file__).resolve().parent.parent / "data" / "slurm"
RUN = "11111111-2222-3333-4444-555555555555"


def _site(**slurm: Any) -> Site:
    return Site.model_validate(
        {"scheduler": "slurm", "runs_dir": "/runs", "max_tasks": 200_000, "slurm": slurm}
    )


def _plan(tasks: int, site: Site | None = None) -> Plan:
    job = Job.model_validate(
        {"name": "big", "command": ["true"], "matrix": {"n": {"range": [0, tasks]}}}
    )
    return make_plan(job, site or _site(), {}, RUN, runtime="native")


def _campaign(tasks: int, site: Site | None = None) -> Plan:
    job = Job.model_validate(
        {
            "name": "c",
            "command": ["true"],
            "matrix": {"n": {"range": [0, tasks]}},
            "steps": {
                "a": {},
                "b": {"needs": {"a": "per_task"}},
                "c": {"needs": {"b": "all"}, "matrix": {}},
            },
        }
    )
    return make_plan(job, site or _site(), {}, RUN, runtime="native")


def _done(stdout: str = "", rc: int = 0, stderr: str = "") -> proc.Completed:
    return proc.Completed(("x",), rc, stdout, stderr)


class Fake:
    """scontrol/sacctmgr/squeue/sbatch from canned answers; sbatch prints 1000, 1001..."""

    def __init__(self, answers: dict[str, proc.Completed | Exception]) -> None:
        self.answers = answers
        self.calls: list[tuple[list[str], str | None]] = []
        self.next_job = 1000

    def __call__(self, argv: Sequence[str], **kwargs: Any) -> proc.Completed:
        self.calls.append((list(argv), kwargs.get("stdin")))
        if argv[0] == "sbatch":
            self.next_job += 1
            return _done(f"{self.next_job - 1}\n")
        key = "usage" if "--format=%u|%T" in argv else argv[0]
        answer = self.answers.get(key, _done(""))
        if isinstance(answer, Exception):
            raise answer
        return answer

    def sbatches(self) -> list[list[str]]:
        return [argv for argv, _ in self.calls if argv[0] == "sbatch"]

    def tools(self) -> list[str]:
        return [argv[0] for argv, _ in self.calls]


def _config(array: int, jobs: int, accounting: bool = False) -> proc.Completed:
    storage = "accounting_storage/slurmdbd" if accounting else "accounting_storage/none"
    return _done(
        f"MaxArraySize            = {array}\nMaxJobCount             = {jobs}\n"
        f"AccountingStorageType   = {storage}\n"
    )


def _option(argv: Sequence[str], name: str) -> str | None:
    return next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")), None)


# --- parsing -------------------------------------------------------------------------


def test_parse_scontrol_show_config() -> None:
    """``Key = value`` lines of ``scontrol show config`` (the file has Slurm 26.05's layout:
    a date header, section headers without ``=``, values with units and parentheses)."""
    config = parse_config((DATA / "scontrol_config.txt").read_text())
    assert config_limits(config) == (1001, 10000)
    assert has_accounting(config)
    assert config["SlurmctldHost[0]"] == "testbed(127.0.0.1)"
    assert config["MinJobAge"] == "300 sec"
    assert not has_accounting(parse_config("AccountingStorageType = accounting_storage/none\n"))
    assert config_limits({}) == (None, None)


def test_parse_sacctmgr_assoc_and_qos() -> None:
    """``-nP`` lines: the lowest association MaxSubmit, the default QOS, the QOS per user."""
    assert parse_assoc("|normal\n50|normal\n20|high\n") == (20, "normal")
    assert parse_assoc("") == (None, "")
    assert parse_qos("normal|500|\nhigh|10|5\n", "high") == 5
    assert parse_qos("normal||\n", "normal") is None
    assert parse_qos("normal|500|\n", "other") is None


def test_parse_usage_counts_every_task_and_mine_unfinished() -> None:
    """Every line is a job the controller holds; mine count only while pending or running."""
    lines = "me|PENDING\nme|RUNNING\nme|COMPLETED\nyou|PENDING\n"
    assert parse_usage(lines, "me") == Usage(jobs=4, mine=2)


def test_site_profile_lowers_scheduler_limits() -> None:
    """The lower value wins, and doctor can say where each came from."""
    site = _site(limits={"max_array_size": 101, "max_job_count": 50_000})
    limits = merge_limits(site, 1001, 10_000, None)
    assert (limits.max_array_size, limits.max_job_count, limits.max_submit_jobs) == (
        101,
        10_000,
        None,
    )
    assert limits.sources == {
        "max_array_size": "site profile",
        "max_job_count": "scheduler",
        "max_submit_jobs": "none found",
    }
    assert merge_limits(_site(), None, None, None).max_array_size == 1001


def test_strict_limits_key() -> None:
    """Unknown keys and nonsense values under slurm.limits are errors."""
    with pytest.raises(ValueError, match="max_arrays"):
        _site(limits={"max_arrays": 5})
    with pytest.raises(ValueError):
        _site(limits={"max_array_size": 1})


def test_query_limits_one_scontrol_and_no_sacctmgr_without_accounting() -> None:
    """No slurmdbd: one scontrol call, sacctmgr never asked."""
    fake = Fake({"scontrol": _config(101, 150)})
    limits = query_limits(_site(), fake)
    assert fake.tools() == ["scontrol"]
    assert (limits.max_array_size, limits.max_job_count, limits.max_submit_jobs) == (101, 150, None)


def test_query_limits_reads_the_qos_with_accounting() -> None:
    """With slurmdbd: the association's and the site's QOS's submit limits, the lower."""
    answers = iter([_done("|normal\n"), _done("long|300|\n")])
    fake = Fake({"scontrol": _config(1001, 10_000, accounting=True)})

    def runner(argv: Sequence[str], **kwargs: Any) -> proc.Completed:
        if argv[0] == "sacctmgr":
            fake.calls.append((list(argv), None))
            return next(answers)
        return fake(argv, **kwargs)

    limits = query_limits(_site(qos="long"), runner)
    assert limits.max_submit_jobs == 300
    assert fake.tools() == ["scontrol", "sacctmgr", "sacctmgr"]
    qos_call = next(argv for argv, _ in fake.calls if "qos" in argv)
    assert qos_call[-3:] == ["where", "name=long", "format=Name,MaxSubmitPU,MaxSubmitPA"]


def test_query_limits_tolerates_missing_tools() -> None:
    """No scontrol or sacctmgr on this host (or no association): defaults, no error."""

    def missing(argv: Sequence[str], **kwargs: Any) -> proc.Completed:
        if argv[0] == "scontrol":
            return _config(1001, 10_000, accounting=True)
        raise CommandError(argv, 127, stderr=f"{argv[0]}: command not found")

    assert query_limits(_site(), missing).max_submit_jobs is None

    def down(argv: Sequence[str], **kwargs: Any) -> proc.Completed:
        raise CommandError(argv, 127, stderr="scontrol: command not found")

    limits = query_limits(_site(limits={"max_job_count": 500}), down)
    assert (limits.max_array_size, limits.max_job_count) == (1001, 500)


# --- the pure split ------------------------------------------------------------------


def _ranges(arrays: Sequence[Any]) -> list[tuple[int, int]]:
    return [(a.members[0], a.members[-1]) for a in arrays]


def test_split_of_100000_tasks_with_slurm_defaults() -> None:
    """MaxArraySize 1001, MaxJobCount 10,000: 100 arrays of up to 1001 indices, every task
    once; 9,999 fit in an empty queue (SLURM refuses reaching MaxJobCount), 90,001 wait."""
    plan = _plan(100_000)
    arrays = plan_arrays(plan, range(100_000), 1001)
    assert len(arrays) == 100
    assert _ranges(arrays)[:2] == [(0, 1000), (1001, 2001)]
    assert _ranges(arrays)[-1] == (99_099, 99_999)
    assert all(a.start == k * 1001 for k, a in enumerate(arrays))
    every = [i for a in arrays for i in a.members]
    assert sorted(every) == list(range(100_000)) and len(every) == len(set(every))
    assert all(0 <= a.array_index(i) <= 1000 for a in arrays for i in a.members)

    limits = Limits(max_array_size=1001, max_job_count=10_000)
    now, later = fit(range(100_000), room(limits, Usage()))
    assert (len(now), len(later), later[0]) == (9_999, 90_001, 9_999)
    first = plan_arrays(plan, now, 1001)
    assert len(first) == 10
    assert _ranges(first)[-1] == (9009, 9998)
    assert sum(len(a.members) for a in first) == 9_999


def test_split_with_max_array_size_101_and_max_job_count_150() -> None:
    """300 tasks: arrays 0-100, 101-201, 202-299; 149 fit: 0-100 and 101-148."""
    plan = _plan(300)
    assert _ranges(plan_arrays(plan, range(300), 101)) == [(0, 100), (101, 201), (202, 299)]
    limits = Limits(max_array_size=101, max_job_count=150)
    now, later = fit(range(300), room(limits, Usage(jobs=0)))
    assert _ranges(plan_arrays(plan, now, 101)) == [(0, 100), (101, 148)]
    assert later == list(range(149, 300))
    # room is MaxJobCount - 1 minus every job held, and MaxSubmitJobs minus mine
    assert room(limits, Usage(jobs=140)) == 9
    assert room(Limits(101, 150, max_submit_jobs=20), Usage(jobs=10, mine=5)) == 15
    assert room(limits, Usage(jobs=400)) == 0


def test_chunks_boundaries_do_not_depend_on_the_subset() -> None:
    """Local task 150 is always array index 49 of the chunk starting at 101."""
    assert [(c.start, c.indices) for c in chunks([150, 3, 250], 101)] == [
        (0, (3,)),
        (101, (150,)),
        (202, (250,)),
    ]


def test_campaign_per_task_steps_split_at_the_same_boundaries_pair_with_aftercorr() -> None:
    """a (250) -> b per_task -> c all: b's chunk k waits aftercorr on a's chunk k; c waits
    afterany on every array of b."""
    plan = _campaign(250)
    arrays = plan_arrays(plan, (t.index for t in plan.tasks), 101)
    names = [a.step.name for a in arrays]
    assert names == ["a", "a", "a", "b", "b", "b", "c"]
    assert [a.waits for a in arrays[3:6]] == [
        (("aftercorr", "#0"),),
        (("aftercorr", "#1"),),
        (("aftercorr", "#2"),),
    ]
    assert arrays[6].waits == (("afterany", "#3"), ("afterany", "#4"), ("afterany", "#5"))
    for up, down in zip(arrays[:3], arrays[3:6], strict=True):
        assert [up.array_index(i) for i in up.members] == [
            down.array_index(i) for i in down.members
        ]


def test_per_task_upstream_split_otherwise_waits_for_its_whole_array() -> None:
    """a was queued as ONE array of 250 (another MaxArraySize); b now goes in arrays of 101.

    b's first chunk has the same array indices as a's tasks (0..100): aftercorr. Its later
    chunks do not (b's local 101 is index 0, a's is 101): aftercorr would pair the wrong
    tasks, so they wait afterany on a's whole array and the wrapper checks each marker.
    """
    plan = _campaign(250)
    queued = {i: f"500_{i}" for i in range(250)}
    b = [t.index for t in plan.steps[1].plan.tasks]
    arrays = plan_arrays(plan, b, 101, queued)
    assert [a.waits for a in arrays] == [
        (("aftercorr", "500"),),
        (("afterany", "500"),),
        (("afterany", "500"),),
    ]


# --- submit and feed -----------------------------------------------------------------


def test_submit_beyond_the_room_submits_what_fits_and_says_why() -> None:
    """MaxArraySize 101, MaxJobCount 150, 20 jobs queued: 129 of 300 go, in two arrays."""
    fake = Fake({"scontrol": _config(101, 150), "usage": _done("x|RUNNING\n" * 20)})
    backend = SlurmBackend(_site(), runner=fake)
    plan = _plan(300)
    ids = backend.submit(plan)
    assert sorted(ids) == list(range(129))
    first, second = fake.sbatches()
    assert _option(first, "array") == "0-100" and _option(second, "array") == "0-27"
    assert _option(second, "job-name") == f"{plan.name}+101"
    assert _option(second, "output") == "/runs/big-11111111/scheduler/101+%a.out"
    assert ids[0] == "1000_0" and ids[101] == "1001_0" and ids[128] == "1001_27"
    assert "room for 129 of 300" in backend.note and "MaxJobCount 150" in backend.note
    assert fake.calls[-1][1] == render_sbatch(plan, 101)
    assert '"$((SLURM_ARRAY_TASK_ID + 101))"' in render_sbatch(plan, 101)


def test_feeding_a_campaign_chains_on_the_tasks_still_queued() -> None:
    """Room for 149 of a (100) -> b (100) -> c: then b's rest waits aftercorr on a."""
    fake = Fake({"scontrol": _config(101, 150)})
    backend = SlurmBackend(_site(), runner=fake)
    plan = _campaign(100)
    ids = backend.submit(plan)
    assert len(ids) == 149 and max(ids) == 148 and backend.note
    _, b = fake.sbatches()
    assert _option(b, "array") == "0-48" and _option(b, "dependency") == "aftercorr:1000"
    # later, room again: the waiting 50 of b and c, with a and b's first half still queued
    rest = [t.index for t in plan.tasks if t.index >= 149]
    more = backend.submit(plan, rest, queued=ids)
    assert sorted(more) == rest and not backend.note
    b2, c, report = fake.sbatches()[2:]
    assert _option(b2, "array") == "49-99" and _option(b2, "dependency") == "aftercorr:1000"
    assert _option(c, "dependency") == "afterany:1001,afterany:1002"
    assert _option(report, "job-name").endswith(".report")  # all went: the report follows


def test_find_maps_chunk_names_back_to_tasks() -> None:
    """One squeue for every chunk name; NAME+101's index 3 is task 104."""
    plan = _plan(300)
    lines = f"7_3|PENDING|None|{plan.name}+101\n6_3|RUNNING|None|{plan.name}\n"
    fake = Fake({"scontrol": _config(101, 150), "squeue": _done(lines)})
    found = SlurmBackend(_site(), runner=fake).find(plan)
    assert found == {3: "6_3", 104: "7_3"}
    squeue = next(argv for argv, _ in fake.calls if argv[0] == "squeue")
    assert f"--name={plan.name},{plan.name}+101,{plan.name}+202" in squeue


def test_batch_script_of_a_chunk_gives_the_wrapper_the_run_wide_index(tmp_path: Path) -> None:
    """Bash computes step offset + chunk start + SLURM_ARRAY_TASK_ID."""
    plan = _campaign(250, Site.model_validate({"scheduler": "slurm", "runs_dir": str(tmp_path)}))
    sub = plan.steps[1].plan  # b: run-wide tasks 250..499
    sub.run_dir.mkdir(parents=True)
    seen = tmp_path / "argv"
    (sub.run_dir / "wrapper.sh").write_text(f'printf "%s\\n" "$2" > {seen}\n')
    env = {"SLURM_ARRAY_TASK_ID": "3", "PATH": "/usr/bin:/bin"}
    subprocess.run(["bash", "-c", render_sbatch(sub, 101)], env=env, check=True)
    assert seen.read_text() == f"{250 + 101 + 3}\n"


def test_doctor_report_names_limits_and_split() -> None:
    """doctor: each limit with its source, the arrays of a run, what waits."""
    limits = merge_limits(_site(), 1001, 10_000, None)
    lines = dict(report(limits, Usage(jobs=0), 100_000))
    assert lines["MaxArraySize"] == "1,001 (scheduler)"
    assert "100 array(s)" in lines["100,000 tasks"] and "99099-99999" in lines["100,000 tasks"]
    assert "9,999 go at submit, 90,001 wait" in lines["room now"]


def test_waiting_tasks_are_journalled_pending_and_never_lost(tmp_path: Path) -> None:
    """submit journals what did not fit as pending 'waiting for room'; status keeps it so."""
    from fcgtainer.runs import monitor
    from fcgtainer.runs.journal import Journal
    from fcgtainer.runs.submit import submit
    from fcgtainer.states import State

    site = Site.model_validate({"scheduler": "slurm", "runs_dir": str(tmp_path / "runs")})
    plan = _plan(300, site)
    fake = Fake({"scontrol": _config(101, 150)})
    journal = Journal()
    done = submit(plan, journal, SlurmBackend(site, runner=fake))
    assert (len(done.ids), done.waiting) == (149, 151) and "room for 149" in done.note
    run = journal.run(plan.run_id)
    assert run.phase == "feeding"
    tasks = journal.tasks(plan.run_id)
    waiting = [t for t in tasks if not t.backend_id]
    assert len(waiting) == 151 and all(t.status.state is State.PENDING for t in waiting)
    assert "the run's feeder submits it" in waiting[0].status.reason
    later = monitor.settle_unsubmitted(journal, run, tasks, run.created + 10**6)
    assert [t.status for t in later if not t.backend_id] == [t.status for t in waiting]


def test_sbatch_refusing_a_later_array_leaves_the_rest_waiting() -> None:
    """The queue filled between the count and the second sbatch: what went is kept."""

    class Refusing(Fake):
        def __call__(self, argv: Sequence[str], **kwargs: Any) -> proc.Completed:
            if argv[0] == "sbatch" and self.next_job > 1000:
                self.calls.append((list(argv), kwargs.get("stdin")))
                raise CommandError(argv, 1, stderr="sbatch: error: QOSMaxSubmitJobPerUserLimit")
            return super().__call__(argv, **kwargs)

    fake = Refusing({"scontrol": _config(101, 10_000)})
    backend = SlurmBackend(_site(), runner=fake)
    ids = backend.submit(_plan(300))
    assert sorted(ids) == list(range(101))
    assert "after 101 tasks" in backend.note and "QOSMaxSubmitJobPerUserLimit" in backend.note
    first = Refusing({"scontrol": _config(101, 10_000)})
    first.next_job = 1001  # the very first sbatch is refused: an error, nothing waits
    with pytest.raises(CommandError):
        SlurmBackend(_site(), runner=first).submit(_plan(300))


def test_resubmit_waiting_feeds_the_rest_chained_on_what_is_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 tasks, room 149: submit sends 149; resubmit --waiting sends the other 151
    once the queue has room again, and leaves nothing waiting."""
    from fcgtainer.runs import control
    from fcgtainer.runs import submit as runs

    journal, plan, fake, make = _small_cluster(tmp_path, monkeypatch)
    done = runs.submit(plan, journal, make(plan.site))
    assert (len(done.ids), done.waiting) == (149, 151)
    queued = "".join(f"{v}|RUNNING|None\n" for v in done.ids.values())
    fake.answers["squeue"] = _done(queued)  # status: the 149 are running
    fake.answers["usage"] = _done("someone|RUNNING\n" * 149)

    def feed() -> int:
        return control.resubmit(journal, journal.run(plan.run_id), states=set(), waiting=True)

    assert feed() == 0
    assert journal.run(plan.run_id).phase == "feeding"  # still no room: nothing lost either
    fake.answers["squeue"] = _done("")  # the first 149 finished and left the queue
    fake.answers["usage"] = _done("")
    for i in range(149):
        (plan.run_dir / "tasks" / str(i)).mkdir(exist_ok=True)  # as the task makes it
        (plan.run_dir / "tasks" / str(i) / "exit_code").write_text("0\n")
    assert feed() == 149
    assert journal.run(plan.run_id).phase == "feeding"
    assert feed() == 2
    assert journal.run(plan.run_id).phase == "submitted"
    tasks = journal.tasks(plan.run_id)
    assert all(t.backend_id for t in tasks)
    assert len({t.backend_id for t in tasks}) == 300
    names = [_option(argv, "job-name") for argv in fake.sbatches()]
    assert names[-1] == f"{plan.name}+202"  # tasks 298-299: the third chunk of 101
    assert _option(fake.sbatches()[-1], "array") == "96-97"


def test_the_feeder_submits_every_waiting_task_then_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, feeders_started: list[str]
) -> None:
    """Submit starts the run's feeder; its rounds submit what fits as tasks finish, until
    nothing waits (the same 300 tasks under room 149)."""
    from fcgtainer.runs import feeder
    from fcgtainer.runs import submit as runs

    journal, plan, fake, make = _small_cluster(tmp_path, monkeypatch, ", feed_every: 5")
    done = runs.submit(plan, journal, make(plan.site))
    assert done.waiting == 151 and feeders_started == [plan.run_id]
    queued = "".join(f"{v}|RUNNING|None\n" for v in done.ids.values())
    fake.answers["squeue"] = _done(queued)
    fake.answers["usage"] = _done("someone|RUNNING\n" * 149)
    naps: list[float] = []

    def queued_tasks_finish(seconds: float) -> None:
        naps.append(seconds)
        fake.answers["squeue"] = _done("")
        fake.answers["usage"] = _done("")
        for task in journal.tasks(plan.run_id):
            if task.backend_id:
                (plan.run_dir / "tasks" / str(task.index)).mkdir(exist_ok=True)
                (plan.run_dir / "tasks" / str(task.index) / "exit_code").write_text("0\n")

    assert feeder.feed(journal, plan.run_id, 5.0, sleep=queued_tasks_finish) == 151
    assert naps == [5.0, 5.0]  # no room, then 149, then the last 2
    assert journal.run(plan.run_id).phase == "submitted"
    assert len({t.backend_id for t in journal.tasks(plan.run_id)}) == 300
    assert feeders_started == [plan.run_id]  # its own rounds start no other feeder


def test_a_status_during_a_feeder_round_never_finds_waiting_tasks_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The round journals the new ids and keeps the run ``feeding`` in one transaction:
    a ``status`` right after it (long past the lost grace) leaves what waits pending."""
    from fcgtainer.runs import control, monitor
    from fcgtainer.runs import submit as runs
    from fcgtainer.states import State

    journal, plan, fake, make = _small_cluster(tmp_path, monkeypatch)
    done = runs.submit(plan, journal, make(plan.site))
    fake.answers["squeue"] = _done("")
    fake.answers["usage"] = _done("")
    for i in done.ids:
        (plan.run_dir / "tasks" / str(i)).mkdir(exist_ok=True)
        (plan.run_dir / "tasks" / str(i) / "exit_code").write_text("0\n")
    seen: list[tuple[str, int]] = []
    real = journal.set_backend_ids

    def then_a_status(run_id: str, ids: Any, **kwargs: Any) -> None:
        real(run_id, ids, **kwargs)
        run = journal.run(run_id)
        tasks = monitor.settle_unsubmitted(journal, run, journal.tasks(run_id), run.created + 10**6)
        seen.append((run.phase, sum(t.status.state is State.LOST for t in tasks)))

    monkeypatch.setattr(journal, "set_backend_ids", then_a_status)
    assert control.resubmit(journal, journal.run(plan.run_id), states=set(), waiting=True) == 149
    assert seen == [("feeding", 0)]


def test_a_feeder_stops_when_nothing_is_left_to_feed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waiting tasks that became terminal otherwise (e.g. marked lost by an older
    fcgtainer): the round finds nothing to submit, the run leaves ``feeding``."""
    from fcgtainer.runs import feeder
    from fcgtainer.runs import submit as runs
    from fcgtainer.states import State, TaskStatus

    journal, plan, fake, make = _small_cluster(tmp_path, monkeypatch)
    done = runs.submit(plan, journal, make(plan.site))
    waiting = [i for i in range(300) if i not in done.ids]
    journal.update_states(plan.run_id, dict.fromkeys(waiting, TaskStatus(State.LOST)))
    fake.answers["squeue"] = _done("".join(f"{v}|RUNNING|None\n" for v in done.ids.values()))
    assert feeder.feed(journal, plan.run_id, 1.0, sleep=lambda _s: None) == 0
    assert journal.run(plan.run_id).phase == "submitted"


def test_a_feeder_exits_at_once_when_nothing_waits(tmp_path: Path) -> None:
    """The real process: started in the background, it finds the run not feeding."""
    import subprocess
    import sys

    from fcgtainer.runs.journal import Journal

    journal = Journal()
    journal.create_run(
        "f" * 32,
        job="big",
        site="small",
        scheduler="slurm",
        run_dir=tmp_path,
        plan_key="k",
        manifest={},
        task_names=["a"],
    )
    argv = [sys.executable, "-m", "fcgtainer.runs.feeder", "f" * 32]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "feeder.lock").exists()


def test_a_cancel_during_a_feeder_round_is_not_undone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user cancels while a round plans: the round submits nothing, the run stays
    cancelled and its feeder stops."""
    from fcgtainer.runs import feeder
    from fcgtainer.runs import submit as runs

    journal, plan, fake, make = _small_cluster(tmp_path, monkeypatch)
    runs.submit(plan, journal, make(plan.site))
    sbatches = len(fake.sbatches())
    real_plan_run = runs.plan_run

    def plan_then_cancel(*args: object, **kwargs: object) -> object:
        planned = real_plan_run(*args, **kwargs)  # type: ignore[arg-type]
        journal.set_phase(plan.run_id, "cancelled")  # the user's cancel, meanwhile
        return planned

    monkeypatch.setattr(runs, "plan_run", plan_then_cancel)
    assert feeder.feed(journal, plan.run_id, 1.0, sleep=lambda _s: None) == 0
    assert journal.run(plan.run_id).phase == "cancelled"
    assert len(fake.sbatches()) == sbatches


def _small_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slurm_extra: str = ""
) -> tuple[Any, Any, Fake, Callable[[Any], SlurmBackend]]:
    """A 300-task job planned on a site limited to arrays of 101 and 150 jobs, its fake
    SLURM in place for control and monitor: (journal, plan, fake, backend factory)."""
    from fcgtainer.runs import control, monitor
    from fcgtainer.runs import submit as runs
    from fcgtainer.runs.journal import Journal

    site_file = tmp_path / "small.yaml"
    site_file.write_text(
        f"scheduler: slurm\nruntime: native\nruns_dir: {tmp_path / 'runs'}\n"
        f"slurm: {{limits: {{max_array_size: 101, max_job_count: 150}}{slurm_extra}}}\n"
    )
    job_dir = tmp_path / "jobs" / "big"
    job_dir.mkdir(parents=True)
    (job_dir / "job.yaml").write_text('command: ["true"]\nmatrix: {n: {range: [0, 300]}}\n')
    fake = Fake({})

    def make(site: Any) -> SlurmBackend:
        return SlurmBackend(site, runner=fake)

    monkeypatch.setattr(control, "get_backend", make)
    monkeypatch.setattr(monitor, "get_backend", make)
    journal = Journal()
    return journal, runs.plan_run(str(job_dir / "job.yaml"), str(site_file), []), fake, make
