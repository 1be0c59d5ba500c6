"""The node-side scripts (fcgtainer/node/): exit codes once, shipped, run by the wrapper."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from fcgtainer import node, states

pytestmark = pytest.mark.unit


def test_exit_codes_in_codes_sh_are_those_of_states() -> None:
    text = (node.source_dir() / "codes.sh").read_text()
    shell = {k: int(v) for k, v in re.findall(r"^FCG_(EXIT_[A-Z_]+)=(\d+)$", text, re.M)}
    python = {k: v for k, v in vars(states).items() if k.startswith("EXIT_")}
    assert shell == python


def test_no_script_spells_an_exit_code_of_the_contract() -> None:
    for name in node.SCRIPTS:
        if name == "codes.sh":
            continue
        lines = (node.source_dir() / name).read_text().splitlines()
        text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
        assert not re.search(r"\b(exit|fcg_die)\s+(85|86|87)\b", text), name


def test_install_copies_every_script(tmp_path: Path) -> None:
    node.install(tmp_path)
    assert sorted(p.name for p in (tmp_path / "node").iterdir()) == sorted(node.SCRIPTS)
    assert (tmp_path / "wrapper.sh").read_text() == (node.source_dir() / "wrapper.sh").read_text()
    assert all((tmp_path / "node" / n).stat().st_mode & 0o100 for n in node.SCRIPTS)


def test_probe_answers_the_doctor(tmp_path: Path) -> None:
    assert node.check("cvmfs", str(tmp_path), "50") == "ok"
    assert node.check("cvmfs", str(tmp_path / "nope"), "50") == "missing"
    assert node.check("image-mode", "always") == "unpack site says always"
    assert node.check("image-mode", "never") == "mount"
    assert node.check("fuse") in ("ok", "absent", "closed")


def test_wrapper_forwards_a_signal_and_records_the_payload_exit(tmp_path: Path) -> None:
    """SIGTERM to the wrapper reaches the payload, whose own exit code is the marker."""
    node.install(tmp_path)
    task = tmp_path / "tasks" / "0"
    task.mkdir(parents=True)
    ready = tmp_path / "ready"
    payload = f"trap 'exit 85' TERM; touch {ready}; while :; do sleep 0.1; done"
    (task / "argv").write_bytes(b"\0".join(a.encode() for a in ["sh", "-c", payload]) + b"\0")
    wrapper = subprocess.Popen(["bash", str(tmp_path / "wrapper.sh"), str(tmp_path), "0"])
    for _ in range(100):
        if ready.exists():
            break
        subprocess.run(["sleep", "0.1"], check=True)
    wrapper.terminate()
    assert wrapper.wait(timeout=30) == states.EXIT_REQUEUE
    assert (task / "exit_code").read_text().strip() == "85"
    assert "got SIGTERM, forwarding it" in (task / "task.log").read_text()
