"""A job's ``check`` validates every task's spec on the submit host, before anything is
queued and on ``--dry-run``: a bad ``--set`` is one error (exit 2), not N failed tasks."""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
Run = Callable[..., tuple[int, str, str]]
Write = Callable[[str, str], Path]

# what a payload's check does: read every spec, say what is wrong with the params
CHECK = """\
import json, pathlib, sys
specs = [json.loads(line) for line in open(sys.argv[1])]
pathlib.Path("checked.json").write_text(json.dumps(specs))
bad = [s["task"] for s in specs if s["params"]["n"] < 0]
if bad:  # exit 2: the payload contract's configuration error
    print(f"params.n: negative in {len(bad)} of {len(specs)} tasks", file=sys.stderr)
    sys.exit(2)
"""


def _job(write: Write, steps: str = "") -> Path:
    write("jobs/checked/check.py", CHECK)
    text = (
        "command: [python3, -c, \"print('ran')\"]\n"
        'check: [python3, check.py, "{specs}"]\n'
        "params: {n: 1}\n"
        "matrix: {k: [a, b, c]}\n"
    )
    return write("jobs/checked/job.yaml", text + textwrap.dedent(steps))


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry run", "submit"])
def test_a_bad_value_stops_the_submit_with_the_checks_message(
    run_cli: Run, write: Write, local_site: Path, tmp_path: Path, dry_run: bool
) -> None:
    job = _job(write)
    argv = ["submit", str(job), "--site", str(local_site), "--set", "n=-2"]
    code, out, err = run_cli(*argv, *(["--dry-run"] if dry_run else []))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert lines[0] == "error: checked: params.n: negative in 3 of 3 tasks"
    assert lines[1].startswith(f"fix: give another value with --set or in {job}")
    assert "submitted" not in out and not (tmp_path / "runs").exists()


def test_the_check_sees_every_tasks_spec_and_a_good_submit_goes_on(
    run_cli: Run, write: Write, local_site: Path
) -> None:
    job = _job(write)
    code, _, err = run_cli("submit", str(job), "--site", str(local_site), "--wait")
    assert code == 0, err
    specs = json.loads((job.parent / "checked.json").read_text())
    assert [(s["task"], s["params"]) for s in specs] == [
        (i, {"n": 1, "k": k}) for i, k in enumerate("abc")
    ]


def test_a_step_inherits_the_check_or_sets_its_own(
    run_cli: Run, write: Write, local_site: Path
) -> None:
    """Each distinct check runs once, on the specs of the steps that have it."""
    job = _job(
        write,
        """\
        steps:
          one: {}
          two: {needs: {one: per_task}}
          last: {needs: {two: all}, matrix: {}, check: []}
        """,
    )
    code, out, err = run_cli("submit", str(job), "--site", str(local_site), "--dry-run")
    assert code == 0, err
    assert "check passed: python3 check.py '{specs}' (no message)" in out
    specs = json.loads((job.parent / "checked.json").read_text())
    assert [(s["step"], s["task"]) for s in specs] == [
        ("one", 0), ("one", 1), ("one", 2), ("two", 3), ("two", 4), ("two", 5)
    ]  # fmt: skip


def test_a_check_with_an_unknown_placeholder_is_a_job_error(
    run_cli: Run, write: Write, local_site: Path
) -> None:
    job = write(
        "jobs/bad/job.yaml", 'command: [python3, -c, "pass"]\ncheck: [python3, c.py, "{spec}"]\n'
    )
    code, _, err = run_cli("submit", str(job), "--site", str(local_site), "--dry-run")
    assert code == 2 and "check: unknown placeholder {spec}; known: {specs}" in err, err


def test_a_check_that_cannot_run_here_is_a_preflight_error(
    run_cli: Run, write: Write, local_site: Path
) -> None:
    """Not exit 2 (say, a copied job.yaml without its code): the check did not judge the
    values, so the message says it could not run and how to go on."""
    job = write(
        "jobs/copied/job.yaml",
        'command: [python3, -c, "pass"]\ncheck: [python3, -m, nowhere, "{specs}"]\n',
    )
    code, _, err = run_cli("submit", str(job), "--site", str(local_site), "--dry-run")
    assert code == 3, err
    assert "check could not run here (exit 1): " in err and "No module named nowhere" in err
    assert "(check: [])" in err


def test_the_task_table_takes_the_spec_lines_the_check_was_given(
    write: Write, local_site: Path, tmp_path: Path
) -> None:
    """The table reads the checked steps' lines back instead of serialising every spec
    again (100,000 specs are ~1.5 s): byte for byte what it would have written itself."""
    from fcgtainer.runs.rundir import write_tasks
    from fcgtainer.runs.submit import plan_run, preflight

    job = _job(write, "steps:\n  one: {}\n  two: {needs: {one: per_task}, check: []}\n")
    plan = plan_run(str(job), str(local_site), ["k=a,c"])
    plans = [step.plan for step in plan.step_plans()]
    specs = preflight(plan, tmp_path).lines
    assert sorted(specs) == ["one"]  # step two has no check: its lines are made as before
    tables = {}
    for name, given in (("made", None), ("read back", specs)):
        write_tasks(plans, {}, given)
        tables[name] = (plan.run_dir / "table" / "0.spec").read_bytes()
        shutil.rmtree(plan.run_dir)
    assert tables["read back"] == tables["made"]
    # and it is the check's file that the table reads for step one
    path, _ = specs["one"]
    path.chmod(0o600)
    path.write_bytes(path.read_bytes().replace(b'"n": 1', b'"n": 7'))
    write_tasks(plans, {}, specs)
    table = (plan.run_dir / "table" / "0.spec").read_bytes()
    assert table.count(b'"n": 7') == 2 and table.count(b'"n": 1') == 2
    assert tables["made"].count(b"\n") == 4 and b'"step": "two"' in tables["made"]
