"""A checkpointing test payload: counts ``steps`` steps, saving progress on SIGUSR2/SIGTERM.

``python3 -m ckpt --spec SPEC``: resumes from ``out_dir/checkpoint.json`` when it exists,
writes it atomically (temp file, fsync, ``os.replace``) and exits 85 when signalled, exits
0 once every step is done.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path


def save(path: Path, step: int) -> None:
    """Write the checkpoint atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".checkpoint.")
    with os.fdopen(fd, "w") as fh:
        json.dump({"step": step}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="ckpt")
    parser.add_argument("--spec", required=True)
    spec = json.loads(Path(parser.parse_args().spec).read_text())
    steps, pause = int(spec["params"]["steps"]), float(spec["params"]["pause"])
    path = Path(spec["out_dir"]) / "checkpoint.json"
    step = json.loads(path.read_text())["step"] if path.exists() else 0
    print(f"ckpt: attempt {spec['attempt']} resumed from step {step}", flush=True)
    stop = {"now": False}
    for sig in (signal.SIGUSR2, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.update(now=True))
    while step < steps:
        if stop["now"]:
            save(path, step)
            print(f"ckpt: signalled, checkpoint at step {step}", flush=True)
            return 85
        time.sleep(pause)
        step += 1
        if step % 10 == 0:
            save(path, step)
    print(f"ckpt: done after {step} steps", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
