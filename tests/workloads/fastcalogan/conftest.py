"""Make the payload importable as it is inside a task (PYTHONPATH=<job_dir>)."""

from __future__ import annotations

import sys
from pathlib import Path

JOB_DIR = Path(__file__).resolve().parents[3] / "jobs" / "fastcalogan"
if str(JOB_DIR) not in sys.path:
    sys.path.insert(0, str(JOB_DIR))
