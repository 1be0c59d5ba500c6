"""A tiny payload: reads the spec, prints it, writes hello.txt; optional sleep and failure."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path


def main() -> int:
    """Entry point: ``python3 -m hello --spec SPEC``."""
    parser = argparse.ArgumentParser(prog="hello")
    parser.add_argument("--spec", required=True)
    spec = json.loads(Path(parser.parse_args().spec).read_text())
    params = spec["params"]
    out = Path(spec["out_dir"])
    print(json.dumps(params, sort_keys=True), flush=True)
    (out / "hello.txt").write_text(f"{params['greeting']} from task {spec['task']}\n")
    stop = {"now": False}
    signal.signal(signal.SIGUSR2, lambda *_: stop.update(now=True))
    deadline = time.monotonic() + float(params.get("sleep", 0))
    while time.monotonic() < deadline and not stop["now"]:
        time.sleep(0.05)
    if stop["now"]:
        return 85
    if spec["task"] == params.get("fail_task"):
        print("failing as asked", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
