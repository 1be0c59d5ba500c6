"""Errors, not tracebacks: journal, runs_dir, config size, complex keys, YAML 1.2 typing,
non-positive resources, a matrix above the cap."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fcgtainer.config.job import load_job
from fcgtainer.config.site import load_site
from fcgtainer.errors import ConfigError, JournalError
from fcgtainer.runs import journal as journal_mod
from fcgtainer.runs import submit as runs
from fcgtainer.runs.journal import Journal

pytestmark = pytest.mark.unit
Write = Callable[[str, str], Path]
RunCli = Callable[..., tuple[int, str, str]]
HELLO = str(Path(__file__).resolve().parents[2] / "jobs" / "hello")


def test_corrupt_journal_is_one_line_naming_file_and_fix(
    run_cli: RunCli, isolated_state: Path
) -> None:
    isolated_state.mkdir(parents=True)
    path = isolated_state / "journal.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    code, _out, err = run_cli("status")
    assert code == 1
    assert "Traceback" not in err
    assert f"{path}: the journal is damaged" in err
    assert "mv " in err and ".damaged" in err


def test_read_only_journal_status_works_submit_says_why(
    run_cli: RunCli, local_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_cli("submit", HELLO, "--site", str(local_site))
    assert code == 0, err
    monkeypatch.setattr(journal_mod, "_writable", lambda path: False)
    code, out, err = run_cli("status")
    assert code == 0, err
    assert "hello" in out
    code, out, err = run_cli("status", "last")
    assert code == 0, err
    code, out, err = run_cli("submit", HELLO, "--site", str(local_site), "--set", "sleep=1")
    assert code == 1 and "journal is read-only" in err and "chmod u+w" in err
    assert "Traceback" not in err


def test_relative_runs_dir_is_the_site_files_and_resolved_once(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site_file = write("sites/rel.yaml", "runtime: native\nruns_dir: runs-here\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    site = load_site(str(site_file))
    assert site.runs_path == site_file.parent / "runs-here"
    assert site.model_dump()["runs_dir"] == str(site_file.parent / "runs-here")


def test_root_runs_dir_is_refused(write: Write) -> None:
    with pytest.raises(ConfigError, match="runs_dir: '/' is the root directory"):
        load_site(str(write("sites/root.yaml", "runs_dir: /\n")))


def test_config_file_size_cap(write: Write) -> None:
    job = write("jobs/big/job.yaml", "command: [echo]\n" + "#" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match="more than the 1048576 a config file may have"):
        load_job(str(job))


@pytest.mark.parametrize("text", ["? [a, b]\n: 1\n", "? {a: 1}\n: 1\n", "[a, b]: 1\n"])
def test_complex_key_is_a_config_error(write: Write, text: str) -> None:
    job = write("jobs/c/job.yaml", "command: [echo]\nparams:\n  " + text.replace("\n", "\n  "))
    with pytest.raises(ConfigError, match="a key must be a plain name"):
        load_job(str(job))


def test_yaml_12_numbers(write: Write) -> None:
    job = write(
        "jobs/n/job.yaml",
        "command: [echo]\nparams: {lr: 1e-4, n: 012, hex: 0x10, flag: on, day: 2024-01-01}\n"
        "resources: {walltime: 24:00:00}\n",
    )
    loaded = load_job(str(job))
    assert loaded.params == {"lr": 0.0001, "n": 12, "hex": 16, "flag": "on", "day": "2024-01-01"}
    assert loaded.resources.walltime == 86400


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ("{memory: 0}", "memory must be positive"),
        ("{memory: 0GiB}", "memory must be positive"),
        ("{cpus: 0}", "cpus must be 1 or more"),
        ("{cpus: -1}", "cpus must be 1 or more"),
        ("{walltime: 0}", "walltime must be positive"),
        ("{walltime: '00:00:00'}", "walltime must be positive"),
        ("{gpus: -1}", "gpus must be zero or more"),
    ],
)
def test_non_positive_resources(write: Write, resources: str, message: str) -> None:
    job = write("jobs/r/job.yaml", f"command: [echo]\nresources: {resources}\n")
    with pytest.raises(ConfigError, match=message):
        load_job(str(job))


def test_matrix_above_the_cap_names_the_axis_unless_confirmed(
    write: Write, local_site: Path, run_cli: RunCli
) -> None:
    job = write("jobs/m/job.yaml", "command: [echo]\nruns: {first: 1, last: 3}\n")
    with pytest.raises(ConfigError, match=r"3,000,000 tasks.*largest axis is 'run'") as err:
        runs.plan_run(str(job), str(local_site), ["runs=1..3000000"])
    assert err.value.hint and "--max-tasks 3000000" in err.value.hint
    small = write(
        "sites/small.yaml", f"runtime: native\nmax_tasks: 2\nruns_dir: {local_site.parent}\n"
    )
    with pytest.raises(ConfigError, match="above the limit of 2"):
        runs.plan_run(str(job), str(small), [])
    assert len(runs.plan_run(str(job), str(small), [], max_tasks=3).tasks) == 3
    code, _, err2 = run_cli("submit", str(job), "--site", str(small), "--dry-run")
    assert code == 2 and "max_tasks" in err2
    code, _out, _ = run_cli(
        "submit", str(job), "--site", str(small), "--dry-run", "--max-tasks", "3"
    )
    assert code == 0


def test_huge_range_is_refused_before_it_is_built(write: Write) -> None:
    job = write("jobs/h/job.yaml", "command: [echo]\nruns: {first: 0, last: 100000000000}\n")
    with pytest.raises(ConfigError, match="surely a typo"):
        load_job(str(job))
    with pytest.raises(ConfigError, match="more than 10,000,000 values"):
        parse_sets_and_apply(job)


def test_a_reversed_or_stepless_range_is_an_error_with_the_range_to_write(write: Write) -> None:
    from fcgtainer.config.job import apply_overrides

    job = load_job(str(write("jobs/r/job.yaml", "command: [echo]\nruns: {first: 0, last: 3}\n")))
    for given, fix in (("5..1", "1..5"), ("0..90:0", "0..90"), ("20..10:5", "10..20:5")):
        with pytest.raises(ConfigError, match=f"{given} is an empty range") as info:
            apply_overrides(job, {"runs": given})
        assert info.value.hint.endswith(f": {fix}"), info.value.hint


def parse_sets_and_apply(job: Path) -> None:
    from fcgtainer.config.job import apply_overrides

    small = job.with_name("small.yaml")
    small.write_text("command: [echo]\nruns: {first: 0, last: 3}\n")
    apply_overrides(load_job(str(small)), {"runs": "1..100000000000"})


def test_state_dir_not_creatable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("FCGTAINER_STATE_DIR", str(blocker / "state"))
    with pytest.raises(JournalError, match="cannot create the journal"):
        Journal()
