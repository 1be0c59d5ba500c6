"""Every kind of bad input through the real CLI: one line naming file, key and fix; exit 2;
nothing journaled, nothing submitted. Hostile parameter values are not bad input: they reach
the payload unchanged and are never executed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
Run = Callable[..., tuple[int, str, str]]
Write = Callable[[str, str], Path]

CASES = {
    "malformed YAML": ("scheduler: [slurm\n", "malformed YAML"),
    "duplicate key": ("scheduler: slurm\nscheduler: local\n", "duplicate key 'scheduler'"),
    "unknown key": ("schedular: slurm\n", "schedular: unknown key"),
    "wrong type": ("gpus: {count: two}\n", "gpus.count"),
    "bad choice": ("scheduler: pbs\n", "scheduler"),
    "bind with comma": ("apptainer: {binds: [{source: '/a,b'}]}\n", "apptainer.binds.0.source"),
    "bind with colon": ("apptainer: {binds: [{source: '/a:/b'}]}\n", "apptainer.binds.0.source"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_site_file(run_cli: Run, write: Write, isolated_state: Path, case: str) -> None:
    text, needle = CASES[case]
    path = write("sites/bad.yaml", text)
    code, out, err = run_cli("submit", "hello", "--site", str(path))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith(f"error: {path}: ") and needle in lines[0]
    assert lines[1].startswith("fix: ") and len(lines[1]) > len("fix: ")
    assert out == "" and not (isolated_state / "journal.sqlite").exists()


def test_missing_site_file(run_cli: Run, tmp_path: Path) -> None:
    code, _, err = run_cli("submit", "hello", "--site", str(tmp_path / "gone.yaml"))
    assert code == 2 and "gone.yaml: no such file" in err


def test_bad_job_file(run_cli: Run, write: Write) -> None:
    path = write("jobs/j/job.yaml", "command: [x]\nmatrix: {a: [1, 2]}\nparams: {a: 1}\n")
    code, _, err = run_cli("submit", str(path), "--dry-run")
    assert code == 2 and f"{path}: " in err and "both a matrix axis and a param" in err


@pytest.mark.parametrize(
    "value", ['it\'s "quoted"', "$(touch pwned)", "line one\nline two", "a; touch pwned", "`id`"]
)
def test_hostile_values_reach_payload(
    run_cli: Run, local_site: Path, tmp_path: Path, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(
        "submit",
        "hello",
        "--site",
        str(local_site),
        "--set",
        f"greeting={value}",
        "--set",
        "n=0",
        "--wait",
    )
    assert code == 0, err
    hello = next((tmp_path / "runs").glob("hello-*/out/0/hello.txt"))
    assert hello.read_text() == f"{value} from task 0\n"
    assert not list(tmp_path.rglob("pwned"))
