"""The HTCondor backend without a pool: parsers on captured logs and ads, a fake schedd."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fcgtainer.backends.htcondor import (
    CONDOR_STATES,
    EVENT_STATES,
    NOT_MATERIALISED,
    HTCondorBackend,
    arguments,
    classad_string,
    describe_submit,
    parse_ads,
    parse_events,
    render_dag,
    render_submit,
)
from fcgtainer.config.job import Job
from fcgtainer.config.site import Site, load_site_file
from fcgtainer.errors import ConfigError
from fcgtainer.plan.tasks import Plan, make_plan
from fcgtainer.runs.monitor import merge
from fcgtainer.states import State, TaskStatus

pytestmark = pytest.mark.unit
DATA = Path(__file__).resolve().parent.parent / "data" / "htcondor"
RUN = "11111111-2222-3333-4444-555555555555"


def _site(tmp_path: Path, **opts: Any) -> Site:
    return Site.model_validate(
        {"scheduler": "htcondor", "runs_dir": str(tmp_path / "runs"), "htcondor": opts}
    )


def _plan(tmp_path: Path, tasks: int = 4, site: dict[str, Any] | None = None, **job: Any) -> Plan:
    loaded = Job.model_validate(
        {"name": "hello", "command": ["true"], "matrix": {"n": {"range": [0, tasks]}}, **job}
    )
    return make_plan(loaded, _site(tmp_path, **(site or {})), {}, RUN, runtime="native")


class FakeSchedd:
    """Records every call; answers queries and history from lists of ads."""

    def __init__(self, queue: list[dict[str, Any]], history: list[dict[str, Any]]) -> None:
        self.queue, self.history_ads = queue, history
        self.calls: list[str] = []

    def submit(self, description: Any, itemdata: Iterator[dict[str, str]]) -> Any:
        self.calls.append("submit")
        items = list(itemdata)
        self.submitted = (dict(description), items)
        return SimpleNamespace(
            cluster=lambda: 31, first_proc=lambda: 0, num_procs=lambda: len(items)
        )

    def query(self, constraint: str, projection: list[str]) -> list[dict[str, Any]]:
        self.calls.append("query")
        return self.queue

    def history(self, constraint: str, projection: list[str], match: int = -1) -> Any:
        self.calls.append("history")
        return iter(self.history_ads)

    def act(self, action: Any, ids: list[str], reason: str = "") -> None:
        self.calls.append(f"act {len(ids)}")


def _backend(tmp_path: Path, schedd: FakeSchedd, **opts: Any) -> HTCondorBackend:
    backend = HTCondorBackend(_site(tmp_path, **opts))
    backend._schedd = lambda: schedd  # type: ignore[method-assign]
    return backend


def test_a_slurm_site_never_imports_htcondor() -> None:
    """Rendering and importing the module do not load the bindings."""
    code = (
        "import sys, fcgtainer.backends.htcondor, fcgtainer.backends.slurm;"
        "assert 'htcondor2' not in sys.modules and 'htcondor' not in sys.modules"
    )
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True)


def test_description_has_retries_checkpoint_and_uuid(tmp_path: Path) -> None:
    """Bounded retries, checkpoint exit code, the run UUID as a job attribute, no getenv."""
    desc = render_submit(_plan(tmp_path, retries=9, checkpoint={"enabled": True}))
    assert desc["max_retries"] == "3", "the site's max_retries bounds the job's wish"
    assert desc["checkpoint_exit_code"] == "85"
    assert desc["kill_sig"] == "SIGUSR2"
    assert desc["+FcgtainerRun"] == f'"{RUN}"'
    assert desc["getenv"] == "false"
    assert "member(ExitCode, {2, 86, 87})" in desc["retry_until"], "config errors: no retry"
    assert "NumJobStarts" in desc["periodic_release"], "releases are bounded"


def test_quoting_helpers() -> None:
    """``$`` is literal, quotes are doubled in arguments and escaped in ClassAd strings."""
    assert arguments(["a b", "it's", "$(task)"]) == "\"'a b' 'it''s' '$(task)'\""
    assert arguments(['"', "$x"]) == "\"'\"\"' '$(DOLLAR)x'\""
    assert classad_string('a"\\', "k") == '"a\\"\\\\"'


def test_held_is_held_with_its_reason() -> None:
    """HoldReason is shown; held is not failed."""
    seen = parse_ads([{"ClusterId": 5, "ProcId": 1, "JobStatus": 5, "HoldReason": "disk full"}])
    assert seen["5.1"].state is State.HELD and seen["5.1"].reason == "disk full"


def test_completed_ads_say_nothing_and_requeued_idle_jobs_say_so() -> None:
    """JobStatus 4 is left to the marker; an idle job that already ran is REQUEUED."""
    seen = parse_ads(
        [
            {"ClusterId": 5, "ProcId": 0, "JobStatus": 4},
            {"ClusterId": 5, "ProcId": 2, "JobStatus": 1, "NumJobStarts": 1},
            {"ClusterId": 5, "ProcId": 3, "JobStatus": 3},
        ]
    )
    assert "5.0" not in seen
    assert seen["5.2"].state is State.REQUEUED
    assert seen["5.3"].state is State.CANCELLED


def test_state_maps_never_say_succeeded() -> None:
    """Only the wrapper's marker says a task succeeded."""
    states = [s for s, _ in CONDOR_STATES.values()] + [s for s, _ in EVENT_STATES.values()]
    assert State.SUCCEEDED not in states


def test_parse_events_on_a_captured_event_log() -> None:
    """A real job event log (tests/data/capture_htcondor.sh): held, evicted, removed, ended."""
    htcondor2 = pytest.importorskip("htcondor2")
    with htcondor2.JobEventLog(str(DATA / "events.log")) as log:
        events = list(log.events(stop_after=0))
    held_at = next(n for n, e in enumerate(events) if e.type.name == "JOB_HELD")
    early = parse_events(events[: held_at + 1])
    assert early["1.2"].state is State.HELD
    assert early["1.2"].reason == "via condor_hold (by user fcg)"
    evicted_at = next(n for n, e in enumerate(events) if e.type.name == "JOB_EVICTED")
    assert parse_events(events[: evicted_at + 1])["1.4"].state is State.REQUEUED
    final = parse_events(events)
    assert final["1.2"].state is State.CANCELLED and final["1.3"].state is State.CANCELLED
    for job in ("1.0", "1.1", "1.4"):  # ended normally: only the marker may say how
        assert final[job].state is State.UNKNOWN


def test_parse_events_keeps_the_latest_event() -> None:
    """Events in order: the last one wins."""
    kind = SimpleNamespace

    def ev(name: str, **attrs: Any) -> Any:
        return SimpleNamespace(type=kind(name=name), cluster=3, proc=0, get=attrs.get)

    seen = parse_events([ev("SUBMIT"), ev("EXECUTE"), ev("JOB_HELD", HoldReason="why")])
    assert seen["3.0"].state is State.HELD and seen["3.0"].reason == "why"
    seen = parse_events(
        [ev("EXECUTE"), ev("JOB_TERMINATED", TerminatedNormally=False, TerminatedBySignal=9)]
    )
    assert seen["3.0"].exit_code == 137


def test_submit_is_one_cluster_with_itemdata(tmp_path: Path) -> None:
    """300 tasks, one submit call; the event log is indexed by cluster for status."""
    schedd = FakeSchedd([], [])
    plan = _plan(tmp_path, 300)
    ids = _backend(tmp_path, schedd).submit(plan)
    assert schedd.calls == ["submit"]
    assert ids[299] == "31.299"
    link = plan.site.runs_path / ".htcondor" / "31.log"
    assert link.is_symlink() and link.resolve() == (plan.run_dir / "events.log").resolve()


def test_status_reads_the_event_log_without_asking_the_schedd(tmp_path: Path) -> None:
    """When the log explains every id, a poll costs no scheduler call at all."""
    htcondor2 = pytest.importorskip("htcondor2")
    assert htcondor2
    schedd = FakeSchedd([], [])
    backend = _backend(tmp_path, schedd)
    with htcondor2.JobEventLog(str(DATA / "events.log")) as log:
        ids = sorted({f"{e.cluster}.{e.proc}" for e in log.events(stop_after=0)})
    cluster = ids[0].split(".")[0]
    index = backend.site.runs_path / ".htcondor"
    index.mkdir(parents=True)
    (index / f"{cluster}.log").symlink_to(DATA / "events.log")
    backend.status([i for i in ids if i.startswith(cluster + ".")])
    assert schedd.calls == []


def test_status_without_log_is_one_query_then_one_history(tmp_path: Path) -> None:
    """Schedd once for all ids; history once for the ones the queue no longer has."""
    schedd = FakeSchedd(
        [{"ClusterId": 9, "ProcId": i, "JobStatus": 2} for i in range(299)],
        [{"ClusterId": 9, "ProcId": 299, "JobStatus": 3}],
    )
    out = _backend(tmp_path, schedd).status([f"9.{i}" for i in range(300)])
    assert schedd.calls == ["query", "history"]
    assert out["9.0"].state is State.RUNNING and out["9.299"].state is State.CANCELLED


def test_find_by_uuid_prefers_the_newest_cluster(tmp_path: Path) -> None:
    """After a resubmission, each task maps to its newest job."""
    schedd = FakeSchedd(
        [
            {"ClusterId": 40, "ProcId": 0, "FcgtainerTask": 0},
            {"ClusterId": 40, "ProcId": 1, "FcgtainerTask": 1},
            {"ClusterId": 41, "ProcId": 0, "FcgtainerTask": 1},
        ],
        [],
    )
    assert _backend(tmp_path, schedd).find(_plan(tmp_path, 2)) == {0: "40.0", 1: "41.0"}


def test_cancel_is_one_action(tmp_path: Path) -> None:
    """Every id in one schedd action."""
    pytest.importorskip("htcondor2")
    schedd = FakeSchedd([], [])
    _backend(tmp_path, schedd).cancel(["1.0", "1.1"])
    assert schedd.calls == ["act 2"]


def test_a_bundled_run_queues_one_job_per_bundle(tmp_path: Path) -> None:
    """bundle: 4 over 10 tasks: 3 jobs (items 0, 4, 8) running node/bundle.sh, whose
    tasks are in bundles.txt before the submit; every task maps to its bundle's job."""
    schedd = FakeSchedd([], [])
    plan = _plan(tmp_path, 10, bundle=4)
    plan.run_dir.mkdir(parents=True)
    ids = _backend(tmp_path, schedd).submit(plan)
    description, items = schedd.submitted
    assert [item["task"] for item in items] == ["0", "4", "8"]
    assert f"{plan.run_dir}/node/bundle.sh" in description["arguments"]
    assert (plan.run_dir / "bundles.txt").read_text() == "0 1 2 3\n4 5 6 7\n8 9\n"
    assert [ids[i] for i in range(10)] == ["31.0"] * 4 + ["31.1"] * 4 + ["31.2"] * 2
    assert describe_submit(plan).splitlines()[-1] == "queue task in (0,4,8)"
    assert "wrapper.sh" in render_submit(_plan(tmp_path, 10))["arguments"]
    ids = _backend(tmp_path, schedd).submit(plan, [5, 9])  # failed ones: rerun together
    assert [item["task"] for item in schedd.submitted[1]] == ["5"] and ids == {5: "31.0", 9: "31.0"}
    assert (plan.run_dir / "bundles.txt").read_text().splitlines()[-1] == "5 9"


def test_find_maps_a_bundles_job_to_its_tasks_the_newest_job_winning(tmp_path: Path) -> None:
    """Bundles 0-3 and 4-7 in cluster 40; tasks 5 and 6 rerun as bundle 5 in cluster 41."""
    plan = _plan(tmp_path, 8, bundle=4)
    plan.run_dir.mkdir(parents=True)
    (plan.run_dir / "bundles.txt").write_text("0 1 2 3\n4 5 6 7\n5 6\n")
    schedd = FakeSchedd(
        [
            {"ClusterId": 40, "ProcId": 0, "FcgtainerTask": 0},
            {"ClusterId": 40, "ProcId": 1, "FcgtainerTask": 4},
            {"ClusterId": 41, "ProcId": 0, "FcgtainerTask": 5},
        ],
        [],
    )
    found = _backend(tmp_path, schedd).find(plan)
    assert found == {0: "40.0", 1: "40.0", 2: "40.0", 3: "40.0", 4: "40.1", 5: "41.0"} | {
        6: "41.0",
        7: "40.1",
    }


def test_cancel_removes_a_bundles_job_once(tmp_path: Path) -> None:
    pytest.importorskip("htcondor2")
    schedd = FakeSchedd([], [])
    _backend(tmp_path, schedd).cancel(["1.0", "1.0", "1.0", "1.1"])
    assert schedd.calls == ["act 2"]


def _campaign(tmp_path: Path, **opts: Any) -> Plan:
    job = Job.model_validate(
        {
            "name": "c",
            "command": ["true"],
            "matrix": {"n": {"range": [0, 3]}},
            "steps": {
                "a": {},
                "b": {"needs": {"a": "per_task"}},
                "c": {"needs": {"b": "all"}, "matrix": {}},
            },
        }
    )
    return make_plan(job, _site(tmp_path, **opts), {}, RUN, runtime="native")


def test_campaign_dag_has_one_node_per_step_and_only_chosen_tasks(tmp_path: Path) -> None:
    from fcgtainer.backends.htcondor import DAG_FILE, render_dag

    files = render_dag(_campaign(tmp_path))
    assert sorted(files) == sorted(
        ["a.sub", "b.sub", DAG_FILE, "c.sub", "report.sub", "dagman.config"]
    )
    dag = files[DAG_FILE].splitlines()
    assert "JOB a a.sub" in dag and "SCRIPT POST b /bin/true" in dag
    assert "PARENT a CHILD b" in dag and "PARENT b CHILD c" in dag
    assert files["b.sub"].endswith("queue task in (3,4,5)\n")
    assert "FINAL report report.sub NOOP" in dag
    assert any(line.endswith("-m fcgtainer.runs.report ../..") for line in dag)
    assert "member(ExitCode, {2, 86, 87, 88, 89})" in files["b.sub"]
    again = render_dag(_campaign(tmp_path), [1, 4, 6])
    assert again["a.sub"].endswith("queue task in (1)\n")
    again = render_dag(_campaign(tmp_path), [6])
    assert (
        sorted(again) == sorted([DAG_FILE, "c.sub", "report.sub", "dagman.config"])
        and "PARENT" not in again[DAG_FILE]
    )


def test_campaign_status_is_one_schedd_query(tmp_path: Path) -> None:
    """DAGMan alive: node jobs by FcgtainerTask, the not-yet-submitted steps are waiting."""
    queue = [
        {"ClusterId": 40, "ProcId": 0, "JobStatus": 2},
        {"ClusterId": 41, "ProcId": 0, "JobStatus": 2, "DAGManJobId": 40, "FcgtainerTask": 3},
        {"ClusterId": 41, "ProcId": 1, "JobStatus": 1, "DAGManJobId": 40, "FcgtainerTask": 4},
    ]
    schedd = FakeSchedd(queue, [])
    out = _backend(tmp_path, schedd).status(["dag40#3", "dag40#4", "dag40#6", "dag39#0"])
    assert schedd.calls == ["query"]
    assert out["dag40#3"].state is State.RUNNING and out["dag40#4"].state is State.PENDING
    assert out["dag40#6"].state is State.UNKNOWN  # monitor: pending, waiting for its step
    assert "dag39#0" not in out  # that DAG has ended: the markers decide
    _backend(tmp_path, schedd).cancel(["dag40#3", "dag40#6"])
    assert schedd.calls[-1] == f"act {len('ClusterId == 40 || DAGManJobId == 40')}"  # a constraint


# ---------------------------------------------------------------- late materialisation


def test_factory_keys_are_typed_closed_and_defaulted(tmp_path: Path) -> None:
    """Defaults fit a real pool; a factory needs a limit; extra cannot set the commands."""
    opts = Site().htcondor
    assert (opts.factory_above, opts.max_idle, opts.max_materialize) == (1000, 1000, None)
    site = tmp_path / "s.yaml"
    cases = {
        "htcondor: {max_idle: 0}": "htcondor.max_idle",
        "htcondor: {max_idle: null}": "max_idle and max_materialize are both null",
        "htcondor: {factory_above: many}": "htcondor.factory_above",
        "htcondor: {extra: {max_idle: '5'}}": "max_idle is set by fcgtainer",
        "htcondor: {max_idel: 5}": "max_idle",  # unknown key: the valid ones are listed
    }
    for text, says in cases.items():
        site.write_text(text + "\n")
        with pytest.raises(ConfigError) as err:
            load_site_file(site)
        assert says in f"{err.value.message} {err.value.hint}", text
    site.write_text("htcondor: {factory_above: null, max_idle: null}\n")
    assert load_site_file(site).htcondor.factory_above is None  # never a factory: fine


def test_a_bundled_step_is_a_node_of_one_job_per_bundle(tmp_path: Path) -> None:
    """Step a in bundles of 2 (tasks 0-2: jobs for 0 and 2), step b one job per task."""
    job = Job.model_validate(
        {
            "name": "c",
            "command": ["true"],
            "matrix": {"n": {"range": [0, 3]}},
            "steps": {"a": {"bundle": 2}, "b": {"needs": {"a": "per_task"}}},
        }
    )
    plan = make_plan(job, _site(tmp_path), {}, RUN, runtime="native")
    files = render_dag(plan)
    assert files["a.sub"].endswith("queue task in (0,2)\n") and "node/bundle.sh" in files["a.sub"]
    assert files["b.sub"].endswith("queue task in (3,4,5)\n") and "wrapper.sh" in files["b.sub"]
    assert render_dag(plan, [1, 2, 4])["a.sub"].endswith("queue task in (1)\n")  # rerun: 1, 2


def test_more_tasks_than_the_threshold_make_a_factory(tmp_path: Path) -> None:
    """max_idle / max_materialize appear above factory_above, counted on what is queued."""
    limits = {"factory_above": 4, "max_idle": 50, "max_materialize": 200}
    desc = render_submit(_plan(tmp_path, 5, limits))
    assert (desc["max_idle"], desc["max_materialize"]) == ("50", "200")
    assert "max_idle" not in render_submit(_plan(tmp_path, 4, limits)), "not above: plain"
    assert "max_idle" not in render_submit(_plan(tmp_path, 5, limits), count=3), "a resubmit"
    never = render_submit(_plan(tmp_path, 5000, {"factory_above": None}))
    assert "max_idle" not in never and "max_materialize" not in never
    only_idle = render_submit(_plan(tmp_path, 1001))
    assert only_idle["max_idle"] == "1000" and "max_materialize" not in only_idle


def test_a_campaign_step_above_the_threshold_is_a_factory_node(tmp_path: Path) -> None:
    """Each node decides on its own chosen tasks: a partial resubmission may be plain."""
    plan = _campaign(tmp_path, factory_above=2)
    files = render_dag(plan)
    assert "max_idle = 1000" in files["a.sub"] and "max_idle = 1000" in files["b.sub"]
    assert "max_idle" not in files["c.sub"]  # one task
    assert "max_idle" not in render_dag(plan, [0, 1, 3])["a.sub"]  # two chosen: not above 2


def test_a_factory_is_submitted_once_with_every_task_as_itemdata(tmp_path: Path) -> None:
    """One schedd call; the items travel with it; proc n is the n-th task as before."""
    pytest.importorskip("htcondor2")
    schedd = FakeSchedd([], [])
    plan = _plan(tmp_path, 300, {"factory_above": 100, "max_idle": 50})
    backend = HTCondorBackend(plan.site)
    backend._schedd = lambda: schedd  # type: ignore[method-assign]
    ids = backend.submit(plan)
    description, items = schedd.submitted
    assert schedd.calls == ["submit"] and description["max_idle"] == "50"
    assert [item["task"] for item in items] == [str(i) for i in range(300)]
    assert ids[0] == "31.0" and ids[299] == "31.299"


def _factory_log(tmp_path: Path, backend: HTCondorBackend, extra: str = "") -> None:
    """The crafted factory log (cluster 7, six tasks, max_idle 2), plus ``extra`` events."""
    log = tmp_path / "factory.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text((DATA / "factory_events.log").read_text() + extra)
    index = backend.site.runs_path / ".htcondor"
    index.mkdir(parents=True, exist_ok=True)
    (index / "7.log").symlink_to(log)


IDS = [f"7.{p}" for p in range(6)]


def test_unmaterialised_procs_are_pending_not_lost(tmp_path: Path) -> None:
    """A live factory's procs with no event yet are PENDING, from the log alone.

    tests/data/htcondor/factory_events.log is crafted in the event log's text format (the
    bindings' JobEventLog parses it): CLUSTER_SUBMIT, procs 0-2 materialised, 0 ended, 1
    running; 3-5 not materialised yet.
    """
    pytest.importorskip("htcondor2")
    schedd = FakeSchedd([], [])
    backend = _backend(tmp_path, schedd)
    _factory_log(tmp_path, backend)
    out = backend.status(IDS)
    assert schedd.calls == [], "the log explains every id: no schedd call"
    assert "7.0" not in out  # ended: the marker decides
    assert out["7.1"].state is State.RUNNING and out["7.2"].state is State.PENDING
    for job_id in ("7.3", "7.4", "7.5"):
        assert out[job_id] == TaskStatus(State.PENDING, reason=NOT_MATERIALISED)
        # the monitor keeps them queued however long they wait: never LOST
        assert merge(out[job_id], None, cancelled=False, overdue=True).state is State.PENDING


def test_a_paused_factory_holds_and_a_removed_one_cancels_what_is_left(tmp_path: Path) -> None:
    """FACTORY_PAUSED: the procs to come are HELD with its reason; CLUSTER_REMOVE
    before the end: they never will be (CANCELLED); resumed: pending again."""
    pytest.importorskip("htcondor2")
    paused = (
        "037 (007.-01.-01) 2026-12-05 10:01:00 Job Materialization Paused\n"
        "\tvia condor_hold (by user fcg)\n\tPauseCode 1\n...\n"
    )
    backend = _backend(tmp_path / "a", FakeSchedd([], []))
    _factory_log(tmp_path / "a", backend, paused)
    seen = backend.status(IDS)["7.4"]
    assert seen.state is State.HELD and "via condor_hold" in seen.reason
    resumed = "038 (007.-01.-01) 2026-12-05 10:02:00 Job Materialization Resumed\n...\n"
    backend = _backend(tmp_path / "b", FakeSchedd([], []))
    _factory_log(tmp_path / "b", backend, paused + resumed)
    assert backend.status(IDS)["7.4"].reason == NOT_MATERIALISED
    removed = (
        "036 (007.-01.-01) 2026-12-05 10:03:00 Cluster removed\n"
        "\tMaterialized 3 jobs from 6 items.\tIncomplete\n...\n"
    )
    backend = _backend(tmp_path / "c", FakeSchedd([], []))
    _factory_log(tmp_path / "c", backend, removed)
    out = backend.status(IDS)
    assert out["7.4"].state is State.CANCELLED and out["7.1"].state is State.RUNNING


def test_without_the_log_procs_above_the_queue_are_still_to_come(tmp_path: Path) -> None:
    """No event log: one query and one history call as before; a proc above the highest
    one queued for its cluster is not materialised yet (factories go in ProcId order)."""
    schedd = FakeSchedd(
        [{"ClusterId": 9, "ProcId": p, "JobStatus": 1} for p in (3, 4)],
        [{"ClusterId": 9, "ProcId": p, "JobStatus": 3} for p in (0,)],
    )
    out = _backend(tmp_path, schedd).status([f"9.{p}" for p in range(8)])
    assert schedd.calls == ["query", "history"]
    assert out["9.0"].state is State.CANCELLED and out["9.4"].state is State.PENDING
    assert out["9.7"] == TaskStatus(State.PENDING, reason=NOT_MATERIALISED)
    assert "9.1" not in out and "9.2" not in out  # below the queue: ended, the marker decides


@pytest.mark.parametrize(
    ("answer", "factory_above", "status", "says"),
    [
        ((0, "20000\n"), 1000, "ok", "20000 (set by the pool); steps of more than 1000"),
        ((1, "Not defined: MAX_JOBS_PER_SUBMISSION\n"), 1000, "ok", "HTCondor's default"),
        ((0, "500\n"), 1000, "warn", "500 (set by the pool); factory_above: 1000"),
        ((0, "20000\n"), None, "warn", "factory_above: None"),
    ],
)
def test_doctor_shows_the_pools_submission_limit(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    answer: tuple[int, str],
    factory_above: int | None,
    status: str,
    says: str,
) -> None:
    """``condor_config_val MAX_JOBS_PER_SUBMISSION`` once, through the proc seam."""
    from fcgtainer import proc
    from fcgtainer.host import doctor

    calls: list[list[str]] = []

    def fake_run(argv: list[str], **kwargs: Any) -> proc.Completed:
        calls.append(list(argv))
        return proc.Completed(tuple(argv), answer[0], answer[1], "")

    monkeypatch.setattr(doctor.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(proc, "run", fake_run)
    check = doctor.check_htcondor_limits(_site(tmp_path, factory_above=factory_above))
    assert calls == [["/usr/bin/condor_config_val", "MAX_JOBS_PER_SUBMISSION"]]
    assert check.status == status and says in check.detail
    if status == "warn":
        assert "factory_above" in check.fix
