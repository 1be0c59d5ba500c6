"""The SLURM backend without SLURM: parsers on captured output, commands through a fake _run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from fcgtainer import proc
from fcgtainer.backends.slurm import (
    SLURM_STATES,
    SlurmBackend,
    array_spec,
    parse_sacct,
    parse_sbatch,
    parse_squeue,
    render_sbatch,
    sbatch_options,
)
from fcgtainer.config.job import Job
from fcgtainer.config.site import Site
from fcgtainer.errors import CommandError, SubmitError
from fcgtainer.plan.tasks import Plan, make_plan
from fcgtainer.states import State

pytestmark = pytest.mark.unit
DATA = Path(__file__).resolve().parent.parent / "data" / "slurm"


def _plan(tasks: int = 4, **site: Any) -> Plan:
    job = Job.model_validate(
        {"name": "hello", "command": ["true"], "matrix": {"n": {"range": [0, tasks]}}}
    )
    return make_plan(
        job,
        Site.model_validate({"scheduler": "slurm", "runs_dir": "/runs", **site}),
        {},
        "11111111-2222-3333-4444-555555555555",
        runtime="native",
    )


def _is_limit_query(argv: Sequence[str]) -> bool:
    """``scontrol show config``, ``sacctmgr``, or the ``squeue`` that counts the queue."""
    return argv[0] in ("scontrol", "sacctmgr") or "--format=%u|%T" in argv


class FakeSlurm:
    """Answers sbatch/squeue/sacct/scancel from canned output and records every call.

    The size-limit queries answer as a controller with SLURM's defaults and an empty queue
    unless ``scontrol``, ``sacctmgr`` or ``usage`` (the queue count) are given.
    """

    def __init__(self, answers: dict[str, proc.Completed | Exception]) -> None:
        self.answers = {"scontrol": _done("", 1, "no controller"), "usage": _done(""), **answers}
        self.calls: list[tuple[list[str], str | None]] = []

    def __call__(self, argv: Sequence[str], **kwargs: Any) -> proc.Completed:
        self.calls.append((list(argv), kwargs.get("stdin")))
        key = "usage" if "--format=%u|%T" in argv else argv[0]
        answer = self.answers[key]
        if isinstance(answer, Exception):
            raise answer
        if kwargs.get("check", True) and answer.returncode != 0:
            raise CommandError(argv, answer.returncode, answer.stdout, answer.stderr)
        return answer

    def tools(self) -> list[str]:
        """The scheduler calls made, without the limit queries."""
        return [argv[0] for argv, _ in self.calls if not _is_limit_query(argv)]

    def submissions(self) -> list[tuple[list[str], str | None]]:
        """The sbatch calls: argv and standard input."""
        return [(argv, stdin) for argv, stdin in self.calls if "--parsable" in argv]


def _done(stdout: str = "", rc: int = 0, stderr: str = "") -> proc.Completed:
    return proc.Completed(("x",), rc, stdout, stderr)


def _backend(fake: FakeSlurm, **site: Any) -> SlurmBackend:
    return SlurmBackend(Site.model_validate({"scheduler": "slurm", **site}), runner=fake)


def test_array_spec_is_compact() -> None:
    """Contiguous indices become ranges, in order, without duplicates."""
    assert array_spec([0, 1, 2, 3]) == "0-3"
    assert array_spec([7, 3, 0, 1, 9, 10, 3]) == "0-1,3,7,9-10"
    assert array_spec([5]) == "5"


def test_options_carry_uuid_requeue_and_no_environment() -> None:
    """The job name has the run UUID; requeue, append and --export=NIL are always there."""
    plan = _plan(300, slurm={"array_limit": 20})
    argv = sbatch_options(plan)
    assert argv[0] == "--parsable"
    assert f"--job-name={plan.name}" in argv and plan.run_id in plan.name
    assert {"--requeue", "--open-mode=append", "--export=NIL", "--array=0-299%20"} <= set(argv)
    assert not any(a.startswith("--signal") for a in argv), "no checkpoint, no signal"
    assert "exec /bin/bash /runs/hello-11111111/wrapper.sh" in render_sbatch(plan)


def test_checkpointing_job_gets_usr2_before_the_limit() -> None:
    """B:USR2 reaches the batch shell (the wrapper) margin seconds before the time limit."""
    job = Job.model_validate(
        {"name": "ck", "command": ["true"], "checkpoint": {"enabled": True, "signal_margin": 30}}
    )
    site = Site.model_validate({"scheduler": "slurm", "slurm": {"signal_margin": 10}})
    plan = make_plan(job, site, {}, "u", runtime="native")
    assert "--signal=B:USR2@30" in sbatch_options(plan)


def test_gpus_as_the_site_asks_for_them() -> None:
    """gres or gpus, with the site's gres name."""
    job = Job.model_validate({"name": "g", "command": ["true"], "resources": {"gpus": 2}})
    gres = Site.model_validate({"scheduler": "slurm", "gpus": {"count": 4}})
    gpus = gres.model_copy(update={"slurm": gres.slurm.model_copy(update={"gpu_request": "gpus"})})
    assert "--gres=gpu:2" in sbatch_options(make_plan(job, gres, {}, "u", runtime="native"))
    assert "--gpus=2" in sbatch_options(make_plan(job, gpus, {}, "u", runtime="native"))


def test_parse_sbatch_validates_the_id() -> None:
    """``--parsable`` prints ``id`` or ``id;cluster``; anything else is an error."""
    assert parse_sbatch("1234\n") == "1234"
    assert parse_sbatch("1234;testbed\n") == "1234"
    with pytest.raises(SubmitError):
        parse_sbatch("sbatch: error: Batch job submission failed\n")


def test_parse_squeue_on_captured_output() -> None:
    """Real squeue output of a running array: pending, running and held tasks."""
    seen = parse_squeue((DATA / "squeue_array.txt").read_text())
    assert seen, "the capture has tasks"
    states = {s.state for s in seen.values()}
    assert states <= {State.PENDING, State.RUNNING, State.HELD, State.REQUEUED}
    assert all("_" in task_id for task_id in seen)


def test_parse_squeue_expands_collapsed_arrays() -> None:
    """``123_[4-6%2]`` (squeue without --array) still names every task."""
    seen = parse_squeue("123_[4-6%2]|PENDING|JobArrayTaskLimit\n123_3|RUNNING|None\n")
    assert sorted(seen) == ["123_3", "123_4", "123_5", "123_6"]
    assert seen["123_4"].reason == "JobArrayTaskLimit"


def test_parse_squeue_held_and_completed() -> None:
    """A user hold is HELD; COMPLETED says nothing (the marker decides)."""
    seen = parse_squeue("9_1|PENDING|JobHeldUser\n9_2|COMPLETED|None\n9_3|CANCELLED|None\n")
    assert seen["9_1"].state is State.HELD
    assert "9_2" not in seen
    assert seen["9_3"].state is State.CANCELLED


def test_parse_sacct_on_captured_output() -> None:
    """Real sacct output: a failed task carries its exit code, completed tasks are omitted."""
    seen = parse_sacct((DATA / "sacct_finished.txt").read_text())
    failed = [s for s in seen.values() if s.state is State.FAILED]
    assert failed and failed[0].exit_code == 3
    assert not any(s.state is State.SUCCEEDED for s in seen.values())


def test_parse_sacct_signals_and_cancellation() -> None:
    """``0:9`` is a signal; ``CANCELLED by 1000`` is CANCELLED; TIMEOUT is a failure."""
    seen = parse_sacct(
        "5_0|FAILED|0:9|None\n5_1|CANCELLED by 1000|0:15|None\n5_2|TIMEOUT|0:0|None\n"
    )
    assert seen["5_0"].exit_code == 137
    assert seen["5_1"].state is State.CANCELLED
    assert seen["5_2"].state is State.FAILED and "walltime" in seen["5_2"].reason


def test_state_map_never_says_succeeded() -> None:
    """No native state maps to SUCCEEDED: only the marker does."""
    assert all(state is not State.SUCCEEDED for state, _ in SLURM_STATES.values())
    assert "COMPLETED" not in SLURM_STATES


def test_submit_is_one_sbatch_with_the_script_on_stdin() -> None:
    """300 tasks, one call; ids are JOBID_INDEX."""
    fake = FakeSlurm({"sbatch": _done("4242\n")})
    plan = _plan(300)
    ids = _backend(fake).submit(plan)
    assert fake.tools() == ["sbatch"]
    assert fake.submissions()[0][1] == render_sbatch(plan)
    assert len(ids) == 300 and ids[299] == "4242_299"


def test_submit_some_indices() -> None:
    """``resubmit --failed`` submits only the chosen tasks, as one array."""
    fake = FakeSlurm({"sbatch": _done("77\n")})
    ids = _backend(fake).submit(_plan(10), [3, 7])
    assert ids == {3: "77_3", 7: "77_7"}
    assert "--array=3,7" in fake.submissions()[0][0]


def test_status_is_one_squeue_call_while_tasks_are_queued() -> None:
    """Every id in one squeue call; no sacct when squeue lists them all."""
    lines = "".join(f"50_{i}|RUNNING|None\n" for i in range(300))
    fake = FakeSlurm({"squeue": _done(lines)})
    out = _backend(fake).status([f"50_{i}" for i in range(300)])
    assert fake.tools() == ["squeue"]
    assert len(out) == 300 and out["50_7"].state is State.RUNNING


def test_status_falls_back_to_sacct_for_tasks_gone_from_squeue() -> None:
    """One squeue, then one sacct for the missing ones only."""
    fake = FakeSlurm(
        {"squeue": _done("50_0|RUNNING|None\n"), "sacct": _done("50_1|FAILED|3:0|None\n")}
    )
    out = _backend(fake).status(["50_0", "50_1"])
    assert fake.tools() == ["squeue", "sacct"]
    assert out["50_1"].state is State.FAILED and out["50_1"].exit_code == 3


def test_status_without_accounting_leaves_gone_tasks_out() -> None:
    """No slurmdbd: sacct says so once, and later polls do not ask it again."""
    disabled = (DATA / "sacct_disabled.txt").read_text()
    fake = FakeSlurm(
        {
            "squeue": _done("", 1, "slurm_load_jobs error: Invalid job id specified\n"),
            "sacct": _done("", 1, disabled),
        }
    )
    backend = _backend(fake)
    assert backend.status(["60_0"]) == {}
    assert backend.status(["60_0"]) == {}
    assert fake.tools() == ["squeue", "sacct", "squeue"]


def test_status_reports_a_broken_squeue() -> None:
    """Any other squeue failure is an error, not an empty queue."""
    fake = FakeSlurm({"squeue": _done("", 1, "slurm_load_jobs error: Unable to contact")})
    with pytest.raises(CommandError):
        _backend(fake).status(["1_0"])


def test_find_prefers_the_newest_job_per_task() -> None:
    """After a resubmission two jobs share the name: each task maps to the newest."""
    fake = FakeSlurm({"squeue": _done("70_[0-2]|PENDING|None\n71_1|RUNNING|None\n")})
    found = _backend(fake).find(_plan(3))
    assert found == {0: "70_0", 1: "71_1", 2: "70_2"}
    find = [argv for argv, _ in fake.calls if argv[0] == "squeue"]
    assert any(a.startswith("--name=fcg-hello-") for a in find[0])


def test_find_asks_sacct_when_squeue_forgot_the_run() -> None:
    """Jobs purged from the controller are still found in accounting."""
    fake = FakeSlurm({"squeue": _done(""), "sacct": _done("80_0|COMPLETED\n80_1|COMPLETED\n")})
    assert _backend(fake).find(_plan(2)) == {0: "80_0", 1: "80_1"}


def test_cancel_is_one_scancel() -> None:
    """Every id in one call; already finished ones do not make it fail."""
    fake = FakeSlurm({"scancel": _done("", 1, "error: already completed")})
    _backend(fake).cancel(["1_0", "1_1", "2_5"])
    assert fake.calls == [(["scancel", "1_0", "1_1", "2_5"], None)]


def test_tool_paths_come_from_the_site() -> None:
    """A site may name its sbatch (e.g. a wrapper script)."""
    fake = FakeSlurm({"/opt/slurm/bin/sbatch": _done("5\n")})
    _backend(fake, slurm={"sbatch": "/opt/slurm/bin/sbatch"}).submit(_plan(1))
    assert fake.tools() == ["/opt/slurm/bin/sbatch"]


def test_parse_squeue_on_captured_collapsed_and_finished_output() -> None:
    """Without --array squeue collapses pending tasks; finished tasks linger as COMPLETED."""
    collapsed = parse_squeue((DATA / "squeue_collapsed.txt").read_text())
    expanded = parse_squeue((DATA / "squeue_array.txt").read_text())
    assert collapsed == expanded
    finished = parse_squeue((DATA / "squeue_finished.txt").read_text())
    assert all(s.state is not State.SUCCEEDED for s in finished.values())
    assert State.FAILED in {s.state for s in finished.values()}


def test_completed_without_marker_is_never_succeeded() -> None:
    """squeue's COMPLETED is no proof: without the marker a task waits, then is LOST."""
    from fcgtainer.runs.monitor import merge

    seen = parse_squeue("1_0|COMPLETED|None\n").get("1_0")
    assert merge(seen, None, cancelled=False, overdue=False).state is State.UNKNOWN
    assert merge(seen, None, cancelled=False, overdue=True).state is State.LOST
    assert merge(seen, 0, cancelled=False, overdue=False).state is State.SUCCEEDED


def _campaign() -> Plan:
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
    site = Site.model_validate({"scheduler": "slurm", "runs_dir": "/runs"})
    return make_plan(job, site, {}, "11111111-2222-3333-4444-555555555555", runtime="native")


def test_campaign_is_one_array_per_step_chained_by_dependencies() -> None:
    """aftercorr pairs task i with task i (local array indices); afterany waits for all."""
    jobs = iter(["100", "101", "102", "103"])

    class Counting(FakeSlurm):
        def __call__(self, argv: Sequence[str], **kwargs: Any) -> proc.Completed:
            answer = super().__call__(argv, **kwargs)
            return _done(next(jobs) + "\n") if "--parsable" in argv else answer

    fake = Counting({"sbatch": _done()})
    plan = _campaign()
    ids = _backend(fake).submit(plan)
    assert fake.tools() == ["sbatch", "sbatch", "sbatch", "sbatch"]  # 3 steps, the report
    assert ids == {
        0: "100_0",
        1: "100_1",
        2: "100_2",
        3: "101_0",
        4: "101_1",
        5: "101_2",
        6: "102_0",
    }
    (a, script_a), (b, script_b), (c, script_c), (report, script_r) = fake.submissions()
    assert "--dependency=afterany:100:101:102" in report and "--array" not in str(report)
    assert "node/report.sh /runs/c-11111111" in (script_r or "")
    assert "--array=0-2" in a and not any(x.startswith("--dependency") for x in a)
    assert "--array=0-2" in b and "--dependency=aftercorr:100" in b
    assert "--kill-on-invalid-dep=yes" in b
    assert "--array=0" in c and "--dependency=afterany:101" in c
    assert '"$((SLURM_ARRAY_TASK_ID + 3))"' in (script_b or "")
    assert '"$((SLURM_ARRAY_TASK_ID + 6))"' in (script_c or "")
    assert '"$SLURM_ARRAY_TASK_ID"' in (script_a or "")
    assert "--output=/runs/c-11111111/steps/b/%a.out" in b


def test_campaign_resubmit_chains_only_what_goes_again() -> None:
    """Task 1 of a, its b (4) and c (6): three arrays of one task, chained; nothing else."""
    jobs = iter(["200", "201", "202", "203"])

    class Counting(FakeSlurm):
        def __call__(self, argv: Sequence[str], **kwargs: Any) -> proc.Completed:
            answer = super().__call__(argv, **kwargs)
            return _done(next(jobs) + "\n") if "--parsable" in argv else answer

    fake = Counting({"sbatch": _done()})
    ids = _backend(fake).submit(_campaign(), [1, 4, 6])
    assert ids == {1: "200_1", 4: "201_1", 6: "202_0"}
    (a, _), (b, _), (c, _), (report, _) = fake.submissions()
    assert "--dependency=afterany:200:201:202" in report  # a new report, after these
    assert "--array=1" in a and "--array=1" in b and "--dependency=aftercorr:200" in b
    assert "--dependency=afterany:201" in c
    # only the last step again: no dependency (its upstream markers are already there)
    fake2 = Counting({"sbatch": _done()})
    jobs = iter(["300", "301"])
    assert _backend(fake2).submit(_campaign(), [6]) == {6: "300_0"}
    assert not any(x.startswith("--dependency") for x in fake2.submissions()[0][0])


def test_campaign_resubmit_splits_a_step_whose_tasks_wait_on_different_arrays() -> None:
    """b's task 4 waits for a's task 1 (going again); b's task 5 waits for nothing."""
    jobs = iter(["400", "401", "402", "403", "404"])

    class Counting(FakeSlurm):
        def __call__(self, argv: Sequence[str], **kwargs: Any) -> proc.Completed:
            answer = super().__call__(argv, **kwargs)
            return _done(next(jobs) + "\n") if "--parsable" in argv else answer

    fake = Counting({"sbatch": _done()})
    ids = _backend(fake).submit(_campaign(), [1, 4, 5, 6])
    assert ids == {1: "400_1", 4: "401_1", 5: "402_2", 6: "403_0"}
    argvs = [argv for argv, _ in fake.submissions()]
    assert "--dependency=aftercorr:400" in argvs[1] and "--array=1" in argvs[1]
    assert "--array=2" in argvs[2] and not any(a.startswith("--dep") for a in argvs[2])
    assert "--dependency=afterany:401,afterany:402" in argvs[3]


def test_campaign_status_is_one_squeue_for_every_step() -> None:
    """The three arrays of a campaign are asked in one squeue call (sacct only if gone)."""
    lines = "100_0|RUNNING|None\n101_[0-2]|PENDING|Dependency\n102_0|PENDING|Dependency\n"
    fake = FakeSlurm({"squeue": _done(lines)})
    ids = ["100_0", "101_0", "101_1", "101_2", "102_0"]
    out = _backend(fake).status(ids)
    assert fake.tools() == ["squeue"]
    assert "--jobs=100,101,102" in fake.calls[-1][0]
    assert out["100_0"].state is State.RUNNING
    assert out["102_0"].state is State.PENDING and out["102_0"].reason == "Dependency"
