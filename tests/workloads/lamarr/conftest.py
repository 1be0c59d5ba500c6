"""Fixtures for the Lamarr payload tests: one model set per session, small runs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

JOB_DIR = Path(__file__).resolve().parents[3] / "jobs" / "lamarr"
if str(JOB_DIR) not in sys.path:
    sys.path.insert(0, str(JOB_DIR))


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model set trained on the known law (quick budget), built once per session.

    Set ``LAMARR_TEST_MODELS`` to a directory to reuse a model set across sessions
    (it is built there if missing).
    """
    from lamarr_job.build import build_models

    cached = os.environ.get("LAMARR_TEST_MODELS")
    target = Path(cached) if cached else tmp_path_factory.mktemp("lamarr") / "models"
    if not target.exists():
        build_models(target, budget="quick")
    return target
