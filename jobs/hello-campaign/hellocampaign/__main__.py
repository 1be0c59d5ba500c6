"""``python3 -m hellocampaign SPEC``: make writes n*n, check checks it, sum adds them up."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from pathlib import Path

# a 1x1 PNG: every task leaves a "plot" for the report to link
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def main(argv: list[str]) -> int:
    """Run the step the spec names; exit 3 when asked to fail."""
    spec = json.loads(Path(argv[0]).read_text())
    params, step = spec["params"], spec.get("step", "make")
    out = Path(spec["out_dir"])
    print(f"step {step} task {spec.get('step_task', spec['task'])}: {json.dumps(params)}")
    time.sleep(float(params.get("sleep") or 0))
    failing = step == params.get("fail_step") and spec.get("step_task") == params.get("fail_task")
    if failing and (not params.get("fail_if") or os.path.exists(params["fail_if"])):
        print("failing as asked", file=sys.stderr)
        return 3
    upstream = spec.get("upstream", {})
    if step == "make":
        value = int(params["n"]) ** 2
    elif step == "check":
        (made,) = upstream["make"]
        value = int((Path(made["out_dir"]) / "value.txt").read_text())
        assert value == int(params["n"]) ** 2, "make wrote a wrong value"
        value += int(params.get("offset") or 0)
    else:
        value = sum(int((Path(u["out_dir"]) / "value.txt").read_text()) for u in upstream["check"])
    (out / "value.txt").write_text(f"{value}\n")
    (out / f"{step}.png").write_bytes(PIXEL)
    if step == "check":
        (out / "metrics.json").write_text(json.dumps({"value": value}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
