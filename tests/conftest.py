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
