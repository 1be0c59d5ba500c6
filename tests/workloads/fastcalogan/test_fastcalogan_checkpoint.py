"""Atomic checkpoints: round trip, damaged files, and kill -9 in the middle of a write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from fastcalogan import checkpoint

pytestmark = pytest.mark.workload
JOB_DIR = Path(__file__).resolve().parents[3] / "jobs" / "fastcalogan"


def _arrays(value: float) -> dict[str, np.ndarray]:
    return {"w": np.full((64, 64), value, np.float32), "iteration": np.asarray(int(value))}


def test_round_trip_and_retention(tmp_path: Path) -> None:
    for it in (10, 20, 30):
        checkpoint.save(tmp_path, it, _arrays(it), {"note": "x"}, keep=2)
    assert [p.name for p in checkpoint.list_records(tmp_path)] == [
        "ckpt-000000020.json",
        "ckpt-000000030.json",
    ]
    assert not (tmp_path / "ckpt-000000010.npz").exists()
    ck = checkpoint.latest_valid(tmp_path)
    assert ck is not None and ck.iteration == 30 and ck.meta["note"] == "x"
    np.testing.assert_array_equal(ck.arrays["w"], _arrays(30)["w"])


def test_damaged_newest_falls_back(tmp_path: Path) -> None:
    checkpoint.save(tmp_path, 1, _arrays(1))
    checkpoint.save(tmp_path, 2, _arrays(2))
    npz = tmp_path / "ckpt-000000002.npz"
    npz.write_bytes(npz.read_bytes()[:100])  # truncated behind our back
    (tmp_path / "ckpt-000000003.npz").write_bytes(b"no metadata: never committed")
    ck = checkpoint.latest_valid(tmp_path)
    assert ck is not None and ck.iteration == 1


_CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import numpy as np
    from fastcalogan import checkpoint
    directory, block_at = Path(sys.argv[1]), int(sys.argv[2])
    checkpoint.save(directory, 1, {"w": np.ones((256, 256), np.float32)})
    real_fsync, calls = os.fsync, [0]
    def fsync(fd):
        calls[0] += 1
        if calls[0] == block_at:  # the data is written, not yet renamed/committed
            (directory / "blocked").write_text("x")
            time.sleep(120)
        real_fsync(fd)
    os.fsync = fsync
    checkpoint.save(directory, 2, {"w": np.full((256, 256), 2, np.float32)})
""")


@pytest.mark.parametrize("block_at", [1, 3], ids=["in-data-write", "before-metadata"])
def test_kill_9_during_write(tmp_path: Path, block_at: int) -> None:
    # fsync calls of a save: 1 npz temp, 2 directory, 3 json temp, 4 directory.
    env = {**os.environ, "PYTHONPATH": str(JOB_DIR)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path), str(block_at)], env=env)
    try:
        for _ in range(600):
            if (tmp_path / "blocked").exists() or child.poll() is not None:
                break
            time.sleep(0.05)
        assert (tmp_path / "blocked").exists(), "the child never reached the write"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert stale, "the kill should have left a temporary file behind"
    ck = checkpoint.latest_valid(tmp_path)
    assert ck is not None and ck.iteration == 1
    np.testing.assert_array_equal(ck.arrays["w"], 1.0)
    # The stray temporary (and a possible uncommitted npz) does not block the next write.
    checkpoint.save(tmp_path, 2, {"w": np.full((256, 256), 3, np.float32)})
    ck = checkpoint.latest_valid(tmp_path)
    assert ck is not None and ck.iteration == 2 and float(ck.arrays["w"][0, 0]) == 3.0
    assert checkpoint.remove_stale_temporaries(tmp_path) == stale


def test_an_old_runtime_is_one_clear_error_and_matches_job_yaml() -> None:
    from fastcalogan import runtime
    from fastcalogan.errors import ConfigError

    runtime.check()  # this interpreter and TensorFlow: supported
    runtime.check(tensorflow="2.12.0rc1")
    with pytest.raises(ConfigError, match=r"TensorFlow 2\.11\.1 is older .* minimum 2\.12"):
        runtime.check(tensorflow="2.11.1")
    with pytest.raises(ConfigError, match=r"Python 3\.8\.6 is older .* minimum 3\.9"):
        runtime.check(python=(3, 8, 6))
    job = (Path(__file__).parents[3] / "jobs/fastcalogan/job.yaml").read_text()
    python, tensorflow = (
        ".".join(map(str, v)) for v in (runtime.MIN_PYTHON, runtime.MIN_TENSORFLOW)
    )
    assert f'requires: {{python: ">={python}", tensorflow: ">={tensorflow}"}}' in job
