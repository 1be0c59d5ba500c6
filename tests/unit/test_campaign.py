"""Campaigns: steps with per_task / all dependencies, upstream failures, resubmit, on local."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from fcgtainer.backends.local import LocalBackend
from fcgtainer.config.job import load_job
from fcgtainer.errors import ConfigError
from fcgtainer.plan.tasks import Plan
from fcgtainer.runs import control, monitor
from fcgtainer.runs import submit as runs
from fcgtainer.runs.journal import Journal
from fcgtainer.runs.rundir import attempts, read_marker
from fcgtainer.states import State

pytestmark = pytest.mark.unit
CAMPAIGN = str(Path(__file__).resolve().parents[2] / "jobs" / "hello-campaign")


def wait_for(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    """Poll until ``predicate`` holds; a generous bound, not a performance threshold."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def finished(journal: Journal, run_id: str) -> bool:
    tasks = monitor.refresh(journal, journal.run(run_id))
    return all(t.status.state.terminal for t in tasks)


def test_steps_expand_per_task_and_all(local_site: Path) -> None:
    plan = runs.plan_run(CAMPAIGN, str(local_site), [])
    assert [(s.name, len(s.plan.tasks), s.offset) for s in plan.steps] == [
        ("make", 6, 0),
        ("check", 6, 6),
        ("sum", 1, 12),
    ]
    assert len(plan.tasks) == 13
    check, total = plan.steps[1].plan, plan.steps[2].plan
    assert check.upstream[9] == {"make": (3,)}
    assert total.upstream[12] == {"check": tuple(range(6, 12))}
    from fcgtainer.plan.tasks import task_spec, with_dependents

    spec = task_spec(check, check.tasks[3])
    assert spec["step"] == "check" and spec["step_task"] == 3 and spec["task"] == 9
    assert spec["upstream"] == {"make": [{"task": 3, "out_dir": str(plan.out_dir(3))}]}
    assert with_dependents(plan, [3]) == [3, 9, 12]


def test_a_job_without_steps_is_unchanged(local_site: Path) -> None:
    hello = str(Path(CAMPAIGN).parent / "hello")
    plan = runs.plan_run(hello, str(local_site), [])
    assert plan.steps == () and [s.name for s in plan.step_plans()] == ["hello"]
    assert plan.name == f"fcg-hello-{plan.run_id}"


def test_needs_an_earlier_step_and_per_task_needs_equal_sizes(tmp_path: Path) -> None:
    bad = tmp_path / "bad" / "job.yaml"
    bad.parent.mkdir()
    bad.write_text("command: ['true']\nsteps:\n  a: {needs: {b: all}}\n  b: {}\n")
    with pytest.raises(ConfigError, match="not an earlier step"):
        load_job(str(bad))


def test_per_task_sizes_must_match(local_site: Path, tmp_path: Path) -> None:
    job = tmp_path / "uneven" / "job.yaml"
    job.parent.mkdir()
    job.write_text(
        "command: ['true']\nmatrix: {n: [1, 2]}\n"
        "steps:\n  a: {}\n  b: {needs: {a: per_task}, matrix: {m: [1, 2, 3]}}\n"
    )
    with pytest.raises(ConfigError, match="per_task needs as many tasks"):
        runs.plan_run(str(job), str(local_site), [])


def test_failed_task_fails_only_its_slice_and_resubmit_completes(
    local_site: Path, tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    journal = Journal()
    flag = tmp_path / "broken"
    flag.touch()
    sets = ["fail_step=make", "fail_task=2", f"fail_if={flag}"]
    plan = runs.plan_run(CAMPAIGN, str(local_site), sets)
    runs.submit(plan, journal)
    wait_for(lambda: finished(journal, plan.run_id))
    tasks = journal.tasks(plan.run_id)
    states = {t.index: t.status.state for t in tasks}
    assert states[2] is State.FAILED and read_marker(plan.run_dir, 2) == 3
    assert states[8] is State.UPSTREAM_FAILED and tasks[8].status.reason == "upstream failed"
    assert states[12] is State.UPSTREAM_FAILED  # sum reads every check: one is missing
    ok = [i for i in range(12) if i not in (2, 8)]
    assert all(states[i] is State.SUCCEEDED for i in ok)
    assert "upstream task 2 exit code 3" in (plan.task_dir(8) / "task.log").read_text()
    # status per step
    from fcgtainer.runs.monitor import step_counts

    assert step_counts(journal.run(plan.run_id), tasks) == {
        "make": {State.SUCCEEDED: 5, State.FAILED: 1},
        "check": {State.SUCCEEDED: 5, State.UPSTREAM_FAILED: 1},
        "sum": {State.UPSTREAM_FAILED: 1},
    }

    code, out, _ = run_cli("status", plan.run_id)
    assert code == 0
    assert "step make: 1 failed, 5 succeeded" in out
    assert "step check: 5 succeeded, 1 upstream failed" in out
    assert "step sum: 1 upstream failed" in out

    flag.unlink()  # the cause is fixed
    assert control.resubmit(journal, journal.run(plan.run_id)) == 3  # 2, its check 8, sum 12
    wait_for(lambda: finished(journal, plan.run_id))
    tasks = journal.tasks(plan.run_id)
    assert all(t.status.state is State.SUCCEEDED for t in tasks)
    assert [attempts(plan.run_dir, i) for i in ok] == [1] * len(ok)  # none ran again
    assert attempts(plan.run_dir, 2) == 2
    total = (plan.out_dir(12) / "value.txt").read_text()
    assert int(total) == sum(n * n for n in range(6))


def test_a_step_that_waits_is_not_failed_and_runs_with_the_rerun(
    local_site: Path, tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    import shutil

    job = tmp_path / "hello-campaign"
    shutil.copytree(CAMPAIGN, job, ignore=shutil.ignore_patterns("__pycache__"))
    text = (job / "job.yaml").read_text()
    (job / "job.yaml").write_text(
        text.replace(
            "    needs: {check: all}\n", "    needs: {check: all}\n    on_upstream_failure: wait\n"
        )
    )
    journal = Journal()
    flag = tmp_path / "broken"
    flag.touch()
    sets = ["fail_step=make", "fail_task=2", f"fail_if={flag}"]
    plan = runs.plan_run(str(job), str(local_site), sets)
    runs.submit(plan, journal)
    wait_for(lambda: finished(journal, plan.run_id))
    tasks = journal.tasks(plan.run_id)
    states = {t.index: t.status.state for t in tasks}
    assert states[8] is State.UPSTREAM_FAILED  # check reports (the default)
    assert states[12] is State.UPSTREAM_WAIT  # sum waits: not failed, not run
    assert read_marker(plan.run_dir, 12) == 89 and not (plan.out_dir(12) / "value.txt").exists()
    log = (plan.task_dir(12) / "task.log").read_text()
    assert "upstream task 8 exit code 88" in log and "waits" in log
    code, out, _ = run_cli("status", plan.run_id)
    assert code == 0
    assert "step sum: 1 waiting on upstream" in out
    assert f"fcgtainer resubmit {plan.run_id[:8]}" in out

    flag.unlink()
    assert control.resubmit(journal, journal.run(plan.run_id)) == 3  # 2, its check 8, sum 12
    wait_for(lambda: finished(journal, plan.run_id))
    assert all(t.status.state is State.SUCCEEDED for t in journal.tasks(plan.run_id))
    assert int((plan.out_dir(12) / "value.txt").read_text()) == sum(n * n for n in range(6))


def test_cache_skips_unchanged_tasks_and_reruns_what_a_change_touches(
    local_site: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    journal = Journal()
    first = runs.plan_run(CAMPAIGN, str(local_site), [])
    runs.submit(first, journal)
    wait_for(lambda: finished(journal, first.run_id))
    assert all(t.status.state is State.SUCCEEDED for t in journal.tasks(first.run_id))

    calls: list[list[int]] = []

    class Counting(LocalBackend):
        def submit(self, plan: Plan, indices: Sequence[int] | None = None) -> dict[int, str]:
            calls.append(list(indices or []))
            return super().submit(plan, indices)

    # the same campaign again: every task cached, no scheduler call at all
    again = runs.plan_run(CAMPAIGN, str(local_site), [])
    done = runs.submit(again, journal, Counting(again.site))
    assert calls == [] and done.ids == {} and len(done.cached) == 13
    states = [t.status for t in journal.tasks(again.run_id)]
    assert all(s.state is State.SUCCEEDED and s.reason.startswith("cached") for s in states)
    assert int((again.out_dir(12) / "value.txt").read_text()) == 55
    record = json.loads((again.run_dir / "manifest.json").read_text())["cache"]
    assert "upstream keys" in record["covers"] and len(record["keys"]) == 13
    assert record["reused"]["12"] == {"run_dir": str(first.run_dir), "task": 12}

    # a param of check only: check's 6 tasks and sum rerun, make's 6 are reused
    changed = runs.plan_run(CAMPAIGN, str(local_site), ["offset=1"])
    done = runs.submit(changed, journal, Counting(changed.site))
    assert calls == [list(range(6, 13))] and sorted(done.cached) == list(range(6))
    wait_for(lambda: finished(journal, changed.run_id))
    assert int((changed.out_dir(12) / "value.txt").read_text()) == 55 + 6
    assert [attempts(changed.run_dir, i) for i in range(13)] == [0] * 6 + [1] * 7

    # --force: everything runs; the CLI says what it skipped otherwise
    code, out, _ = run_cli("submit", CAMPAIGN, "--site", str(local_site), "--set", "offset=1")
    assert code == 0 and "skipped 13 task(s)" in out and "no scheduler call" in out
    forced = runs.plan_run(CAMPAIGN, str(local_site), ["offset=1"])
    done = runs.submit(forced, journal, Counting(forced.site), force=True)
    assert calls[-1] == list(range(13)) and done.cached == {}
    wait_for(lambda: finished(journal, forced.run_id))


def test_report_links_every_task_and_every_image_exists(
    local_site: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    journal = Journal()
    plan = runs.plan_run(CAMPAIGN, str(local_site), ["fail_step=check", "fail_task=4"])
    runs.submit(plan, journal)
    wait_for(lambda: finished(journal, plan.run_id))
    code, out, _ = run_cli("report", plan.run_id[:8])
    assert code == 0
    path = Path(out.strip())
    assert path == plan.run_dir / "report" / "index.html"
    page = path.read_text()
    assert "<script" not in page
    for index in range(13):
        assert f'id="task-{index}"' in page
    for index in (0, 5, 6, 9, 11):  # those that ran wrote a plot, linked from their row
        row = page.split(f'id="task-{index}"', 1)[1].split("</tr>", 1)[0]
        assert ".png" in row
    links = re.findall(r'(?:href|src)="([^"#]+)"', page)
    assert links and all((path.parent / html.unescape(link)).is_file() for link in links)
    assert "upstream failed" in page and "provenance" in page
    assert "step check: value over" not in page  # one axis: a table, no heat map
    assert ">value</th>" in page  # check's metrics.json is a column

    # DAGMan's FINAL node builds it from the run directory alone (no journal)
    from fcgtainer.runs.report import main

    path.unlink()
    assert main([str(plan.run_dir)]) == 0
    alone = path.read_text()
    for index in range(13):
        assert f'id="task-{index}"' in alone
    assert alone.count("upstream failed") == page.count("upstream failed")


def test_report_heat_map_over_two_axes_links_each_slice(tmp_path: Path) -> None:
    """A validation step over particle x eta: one heat map per metric, cells link to rows."""
    from fcgtainer.runs.journal import RunRecord, TaskRecord
    from fcgtainer.runs.report import build
    from fcgtainer.states import TaskStatus

    run_dir = tmp_path / "run"
    names = [(p, e) for p in ("photon", "pion") for e in (20, 25, 30)]
    tasks = []
    for i, (particle, eta) in enumerate(names):
        out = run_dir / "out" / str(i)
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps({"chi2_ndf": 1.0 + i, "ks": 0.1 * i}))
        (out / "energy.png").write_bytes(b"\x89PNG")
        name = f"step=validate,particle={particle},eta_slice={eta}"
        tasks.append(TaskRecord("r", i, name, None, TaskStatus(State.SUCCEEDED, 0), 0.0))
    run = RunRecord(
        "r" * 36, "fcg", "local", "local", run_dir, 0.0, "submitted", "k",
        {"job": {"steps": {"validate": {}}}},
    )  # fmt: skip
    page = build(run, tasks).read_text()
    assert "validate: chi2_ndf over particle x eta_slice" in page
    assert "validate: ks over particle x eta_slice" in page
    for i in range(6):
        assert page.count(f'href="#task-{i}"') == 2  # one cell in each heat map
        assert f"../out/{i}/energy.png" in page


def test_cancel_stops_every_step(local_site: Path) -> None:
    journal = Journal()
    plan = runs.plan_run(CAMPAIGN, str(local_site), ["sleep=60"])
    runs.submit(plan, journal)
    wait_for(lambda: (plan.task_dir(0) / "pid").exists())
    control.cancel(journal, journal.run(plan.run_id), None)
    wait_for(lambda: finished(journal, plan.run_id), timeout=60)
    tasks = journal.tasks(plan.run_id)
    assert all(t.status.state is State.CANCELLED for t in tasks)
    assert all(read_marker(plan.run_dir, i) is None for i in range(6, 13))  # never started
    from fcgtainer.backends.local import supervised

    assert not supervised(plan.run_dir)


def test_a_lamarr_shaped_campaign_runs_then_one_merge(local_site: Path, tmp_path: Path) -> None:
    """runs: (aliases and all) are a step's axis; a merge step with runs: null is one task."""
    job = tmp_path / "gen" / "job.yaml"
    job.parent.mkdir()
    job.write_text(
        "command: ['true']\nruns: {first: 1, last: 4, list: [9], banned: [2]}\n"
        "steps:\n  generate: {}\n"
        "  merge: {needs: {generate: all}, runs: null, command: ['true', '{spec}']}\n"
    )
    plan = runs.plan_run(str(job), str(local_site), ["runs=1..3"])
    assert [len(s.plan.tasks) for s in plan.steps] == [2, 1]  # runs 1 and 3 (2 is banned)
    assert plan.steps[1].plan.upstream[2] == {"generate": (0, 1)}
