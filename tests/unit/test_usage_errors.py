"""Usage errors are one line and exit 2, with the typer (and click) actually installed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "args",
    [
        ("submit",),
        ("submit", "x", "--no-such-option"),
        ("no-such-command",),
        ("status", "a", "b"),
    ],
)
def test_usage_error_is_one_line_exit_2(
    run_cli: Callable[..., tuple[int, str, str]], args: tuple[str, ...]
) -> None:
    code, out, err = run_cli(*args)
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:")
    assert "Traceback" not in err + out
    assert "--help" in lines[0]


def test_sigterm_to_the_cli_is_one_line_and_130(local_site: Path) -> None:
    """SIGTERM during `submit --wait` ends like Ctrl-C: locks released, one line, exit 130."""
    hello = str(Path(__file__).resolve().parents[2] / "jobs" / "hello")
    argv = [sys.executable, "-m", "fcgtainer", "submit", hello, "--site", str(local_site)]
    cli = subprocess.Popen(
        [*argv, "--set", "sleep=30", "--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    time.sleep(3.0)
    cli.send_signal(signal.SIGTERM)
    _, err = cli.communicate(timeout=60)
    assert cli.returncode == 130, err
    assert b"Traceback" not in err and b"aborted" in err
