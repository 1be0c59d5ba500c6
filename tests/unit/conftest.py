"""Helpers for unit tests: write site and job files, run the CLI entry point."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from fcgtainer import cli


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write dedented text to a file under tmp_path and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    return _write


@pytest.fixture
def local_site(write: Callable[[str, str], Path], tmp_path: Path) -> Path:
    """A local site whose runs go under tmp_path."""
    return write(
        "sites/testlocal.yaml",
        f"""\
        scheduler: local
        runtime: native
        runs_dir: {tmp_path}/runs
        local: {{max_parallel: 2}}
        """,
    )


@pytest.fixture
def run_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str, str]]:
    """Run ``fcgtainer ARGS`` through the real entry point; return (code, out, err)."""

    def _run(*args: str, columns: int = 200) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["fcgtainer", *args])
        monkeypatch.setenv("COLUMNS", str(columns))
        code = 0
        try:
            cli.main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return _run
