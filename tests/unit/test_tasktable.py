"""The task table: what submit writes, what the wrapper copies into tasks/<i>/ on the node."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fcgtainer import node, tasktable

pytestmark = pytest.mark.unit

ARGV = {
    0: ["python3", "-m", "hello", "multi\nline value", "", "ünïcode", "--spec", "/r/tasks/0/x"],
    1: ["true"],
    2: ["true"],
    1002: ["echo", "chunk 1"],
}
ROWS = {
    0: tasktable.Row(1, 20, 3600, 300, ()),
    1: tasktable.Row(0, 5, 60, 0, (0,)),
    2: tasktable.Row(0, 5, 60, 0, (0, 1), wait=True),  # on_upstream_failure: wait
    1002: tasktable.Row(2, 20, 7200, 0, tuple(range(1000))),
}


def _spec(index: int) -> dict[str, object]:
    params = {"attempt": 7, "text": '"attempt": 9 at the start'}  # a param of that name
    return {"fcgtainer": 1, "task": index, "params": params, "attempt": 1}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    table = tmp_path / "table"
    table.mkdir()
    kinds = {
        "spec": lambda i: tasktable.spec_line(_spec(i)),
        "argv": lambda i: tasktable.argv_line(ARGV[i]),
        "task": lambda i: tasktable.task_line(ROWS[i]),
    }
    for kind, line in kinds.items():
        for chunk, content in tasktable.chunks((i, line(i)) for i in sorted(ARGV)):
            (table / f"{chunk}.{kind}").write_bytes(content)
    node.install(tmp_path)
    return tmp_path


def _materialise(run_dir: Path, index: int) -> subprocess.CompletedProcess[str]:
    script = '. "$1/node/codes.sh"; . "$1/node/table.sh"; fcg_materialise "$1" "$2"'
    argv = ["bash", "-c", script, "-", str(run_dir), str(index)]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("index", sorted(ARGV))
def test_the_wrapper_copies_exactly_what_submit_wrote(run_dir: Path, index: int) -> None:
    assert _materialise(run_dir, index).returncode == 0
    tdir = run_dir / "tasks" / str(index)
    assert (tdir / "argv").read_bytes() == b"".join(a.encode() + b"\0" for a in ARGV[index])
    assert json.loads((tdir / "spec.json").read_text()) == _spec(index)
    row = ROWS[index]
    for name in ("retries", "max_requeues", "walltime", "signal_margin"):
        assert int((tdir / name).read_text()) == getattr(row, name)
    upstream = tdir / "upstream"
    assert (upstream.read_text().split() if upstream.exists() else []) == [
        str(j) for j in row.upstream
    ]
    assert (tdir / "upstream_wait").exists() is row.wait


def test_the_host_reads_the_table_before_the_task_starts(run_dir: Path) -> None:
    assert tasktable.indices(run_dir) == sorted(ARGV)
    assert tasktable.rows(run_dir) == ROWS
    assert tasktable.row(run_dir, 1002) == ROWS[1002]
    assert tasktable.row(run_dir, 5) is None  # a gap of the chunk: an empty line
    assert tasktable.spec(run_dir, 1) == _spec(1)


def test_a_task_the_table_lacks_fails_saying_where(run_dir: Path) -> None:
    done = _materialise(run_dir, 2500)
    assert done.returncode != 0 and "2.task" in done.stderr
    assert not (run_dir / "tasks" / "2500" / "argv").exists()


def test_the_attempt_rewrite_touches_the_top_level_key_only(run_dir: Path) -> None:
    assert _materialise(run_dir, 0).returncode == 0
    spec = run_dir / "tasks" / "0" / "spec.json"
    wrapper = (node.source_dir() / "wrapper.sh").read_text()
    rewrite = next(line for line in wrapper.splitlines() if 'sed -E "1s/' in line)
    command = rewrite.strip().rstrip("\\").strip().replace("$attempt", "3")
    command = command.replace('"$dir/spec.json"', '"$0"')
    subprocess.run(["bash", "-c", f'{command} > "$0.new"', str(spec)], check=True)
    data = json.loads(Path(f"{spec}.new").read_text())
    assert data["attempt"] == 3 and data["params"] == _spec(0)["params"]


def test_chunk_size_is_the_same_on_both_sides() -> None:
    text = (node.source_dir() / "table.sh").read_text()
    assert f"FCG_TABLE_CHUNK={tasktable.CHUNK}" in text
