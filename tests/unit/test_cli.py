"""The CLI through its real entry point: listings, dry runs, errors as one line + exit 2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
Run = Callable[..., tuple[int, str, str]]
Write = Callable[[str, str], Path]


def test_sites_and_jobs_list_what_is_shipped(run_cli: Run) -> None:
    code, out, _ = run_cli("sites")
    assert code == 0
    for name in ("local", "bologna", "oph", "cnaf", "leonardo", "lxplus"):
        assert name in out
    code, out, _ = run_cli("jobs")
    assert code == 0 and "hello" in out


def test_a_narrow_terminal_wraps_descriptions_never_the_names_to_type(run_cli: Run) -> None:
    from fcgtainer.config.job import available_jobs
    from fcgtainer.config.site import available_sites

    for listing, names in (("sites", available_sites()), ("jobs", available_jobs())):
        code, out, _ = run_cli(listing, columns=60)
        assert code == 0 and "\u2026" not in out, out  # nothing cut to an ellipsis
        table = [line for line in out.splitlines() if " searched in " not in line]
        assert {line.split()[0] for line in table if line.strip()} >= set(names), out
        assert all(len(line) <= 60 for line in table), out


def test_show_site_fills_defaults(run_cli: Run) -> None:
    code, out, _ = run_cli("sites", "show", "leonardo")
    assert code == 0 and "boost_usr_prod" in out and "internet: false" in out


@pytest.mark.parametrize("site", ["local", "oph", "lxplus"])
def test_dry_run_prints_tasks_and_submission(run_cli: Run, site: str) -> None:
    code, out, err = run_cli("submit", "hello", "--site", site, "--dry-run", "--set", "n=1..2")
    assert code == 0, err
    assert "2 task(s)" in out and '"n": 1' in out and "python3 -m hello" in out


def test_bad_input_is_one_line_exit_2(run_cli: Run, write: Write) -> None:
    bad = write("sites/bad.yaml", "slurm: {partiton: x}\n")
    code, out, err = run_cli("submit", "hello", "--site", str(bad), "--dry-run")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: ") and f"{bad}: slurm.partiton: unknown key" in lines[0]
    assert lines[1].startswith("fix: valid keys here:")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["submit", "nojob"], "no such job"),
        (["submit", "hello", "--site", "atlantis"], "no such site"),
        (["submit", "hello", "--set", "oops"], "expected key=value"),
        (["submit", "hello", "--set", "n=9"], "not a value of matrix axis"),
    ],
)
def test_errors_submit_nothing(
    run_cli: Run, args: list[str], needle: str, isolated_state: Path
) -> None:
    code, _, err = run_cli(*args)
    assert code == 2 and needle in err
    assert not (isolated_state / "journal.sqlite").exists()


def test_an_image_the_tasks_would_not_run_in_is_an_error(
    run_cli: Run, write: Write, local_site: Path, isolated_state: Path
) -> None:
    argv = ("submit", "hello", "--image", "/images/x.sif", "--dry-run", "--site")
    code, _, err = run_cli(*argv, str(local_site))
    assert code == 2 and "runs its tasks natively" in err and "runtime: native" in err, err
    auto = write("sites/auto.yaml", "runtime: auto\napptainer: {binary: no-such-apptainer}\n")
    code, _, err = run_cli(*argv, str(auto))
    assert code == 2 and "no-such-apptainer is not on this host's PATH" in err, err
    assert not (isolated_state / "journal.sqlite").exists()


def test_submit_status_logs_local(run_cli: Run, local_site: Path) -> None:
    code, out, err = run_cli("submit", "hello", "--site", str(local_site), "--wait")
    assert code == 0, err
    assert "all 4 task(s) succeeded" in out
    code, out, _ = run_cli("status")
    assert code == 0 and "succeeded" in out
    code, out, _ = run_cli("status", "last", "--all")
    assert code == 0 and "local#3" in out and out.count("#") == out.count("local#"), out
    code, out, _ = run_cli("resubmit", "last")
    assert (
        code == 0 and "nothing to resubmit: no task of run" in out and "is failed, lost" in out
    ), out
    code, out, _ = run_cli("logs", "last", "--task", "3")
    assert code == 0 and '"n": 3' in out and "exited 0" in out


def test_missing_required_input_fails_before_queueing(
    run_cli: Run, write: Write, local_site: Path, isolated_state: Path
) -> None:
    job = write(
        "jobs/needs/job.yaml",
        """\
        command: [/bin/true]
        inputs: {models: {default: "{job_dir}/models", required: true}}
        """,
    )
    code, _, err = run_cli("submit", str(job), "--site", str(local_site))
    assert code == 3 and "inputs.models.default" in err and "does not exist" in err
