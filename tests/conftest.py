"""Shared fixtures: an isolated state directory and runs directory for every test."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own journal, so nothing leaks between tests or into ~."""
    state = tmp_path / "state"
    monkeypatch.setenv("FCGTAINER_STATE_DIR", str(state))
    return state


@pytest.fixture(autouse=True)
def feeders_started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The runs whose background feeder submit would have started (in this process only:
    a test drives ``fcgtainer.runs.feeder.feed`` itself; CLI subprocesses start real ones).

    Nothing to patch where fcgtainer's own dependencies are absent: the payload-only venv
    of the oldest supported TensorFlow runs tests/workloads/fastcalogan alone.
    """
    started: list[str] = []
    try:
        from fcgtainer.runs import feeder
    except ImportError:
        return started

    def start(run: object) -> int:
        started.append(str(getattr(run, "id", "")))
        return 0

    monkeypatch.setattr(feeder, "start", start)
    return started
