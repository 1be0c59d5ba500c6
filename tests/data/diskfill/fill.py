"""A test payload that writes ``mib`` MiB into its output directory (``fill.bin``).

``python3 -m fill --spec SPEC``: on a filesystem with less room it fails as a real training
job would when its disk fills up (``OSError: [Errno 28] No space left on device``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CHUNK = b"\0" * 65536


def main() -> int:
    """Entry point: write the file 64 KiB at a time, then exit 0."""
    parser = argparse.ArgumentParser(prog="fill")
    parser.add_argument("--spec", required=True)
    spec = json.loads(Path(parser.parse_args().spec).read_text())
    with open(Path(spec["out_dir"]) / "fill.bin", "wb") as out:
        for _ in range(int(spec["params"]["mib"]) * 16):
            out.write(CHUNK)
    print(f"wrote {spec['params']['mib']} MiB", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
