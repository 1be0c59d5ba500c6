"""A job's check of an input's content (``inputs.NAME.check``) runs at submit, on this host,
before a run directory is written or anything queued; its last line of output is the error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
Run = Callable[..., tuple[int, str, str]]
Write = Callable[[str, str], Path]

CHECK = (
    "import pathlib, sys; p = pathlib.Path(sys.argv[1]); "
    "(p / 'good').exists() or sys.exit(f'{p}: no file named good'); "
    "pathlib.Path('checked-from').write_text(str(pathlib.Path.cwd()))"
)


def _job(write: Write, data: Path) -> Path:
    return write(
        "jobs/checked/job.yaml",
        f"""\
        command: [python3, -c, "print('ran')"]
        inputs:
          data:
            default: {data}
            check: [python3, -c, "{CHECK}", "{{path}}"]
        """,
    )


def test_failing_check_stops_the_submit(
    run_cli: Run, write: Write, local_site: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    code, out, err = run_cli("submit", str(_job(write, data)), "--site", str(local_site))
    assert code == 3, err
    lines = err.strip().splitlines()
    assert lines[0] == f"error: input data ({data}): {data}: no file named good"
    assert lines[1].startswith("fix: restage it")
    assert "submitted" not in out
    assert not (tmp_path / "runs").exists()


def test_passing_check_runs_in_the_job_directory(
    run_cli: Run, write: Write, local_site: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "good").write_text("")
    job = _job(write, data)
    code, _, err = run_cli("submit", str(job), "--site", str(local_site), "--wait")
    assert code == 0, err
    assert (job.parent / "checked-from").read_text() == str(job.parent)
