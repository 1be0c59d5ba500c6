"""The shipped FastCaloGAN campaign end to end on the local site: train -> validate ->
assemble, then its report (every slice linked from the heat maps, every file it links
present) and the bundle's index (every generator, checksums that match)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytestmark = pytest.mark.workload
SLICES = (20, 21)


class Links(HTMLParser):
    """Every href and img src of a page, and every element id."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if tag == "a" and values.get("href"):
            self.hrefs.append(str(values["href"]))
        if tag == "img" and values.get("src"):
            self.srcs.append(str(values["src"]))


def _fcgtainer(site: Path, *args: str) -> str:
    argv = [sys.executable, "-m", "fcgtainer", *args, "--site", str(site)]
    env = {**os.environ, "COLUMNS": "300", "FCGTAINER_STATE_DIR": str(site.parent / "state")}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-slice pion campaign, a few iterations: its run directory."""
    base = tmp_path_factory.mktemp("campaign")
    site = base / "site.yaml"
    site.write_text(f"scheduler: local\nruntime: native\nruns_dir: {base / 'runs'}\n")
    _fcgtainer(
        site,
        "submit",
        "fastcalogan",
        "--set",
        "particle=pion",
        "--set",
        f"eta_slice={SLICES[0]}..{SLICES[-1]}",
        *("--set", "iterations=10", "--set", "checkpoint_every=5"),
        *("--set", "events_per_energy=60", "--set", "eval_events=60"),
        "--wait",
    )
    (run_dir,) = (base / "runs").glob("fastcalogan-*")
    return run_dir


def test_report_links_every_slice_and_every_file(campaign: Path) -> None:
    report = campaign / "report" / "index.html"
    assert report.is_file()
    page = Links()
    page.feed(report.read_text())
    anchors = [h for h in page.hrefs if h.startswith("#")]
    files = [h for h in page.hrefs + page.srcs if not h.startswith("#")]
    for href in anchors:
        assert href[1:] in page.ids, f"{href} points nowhere"
    for href in files:
        assert (report.parent / href).is_file(), f"{href} is not there"
    validate = sorted(
        json.loads(p.read_text())["task"]
        for p in campaign.glob("tasks/*/spec.json")
        if json.loads(p.read_text()).get("step") == "validate"
    )
    assert len(validate) == len(SLICES)
    for task in validate:  # each slice: a heat-map cell and its plots
        assert f"#task-{task}" in anchors
        for plot in ("total_energy.png", "chi2_vs_iteration.png", "validation_layers.png"):
            assert any(h.startswith(f"../out/{task}/") and h.endswith(plot) for h in files)
    assert "chi2_ndf over particle x eta_slice" in report.read_text()
    assert any(s.endswith("chi2_ndf_vs_eta.png") for s in page.srcs)


def test_bundle_holds_every_generator_with_its_checksum(campaign: Path) -> None:
    (index_path,) = campaign.glob("out/*/index.json")
    index = json.loads(index_path.read_text())
    assert [g["eta_slice"] for g in index["gans"]] == list(SLICES)
    for gan in index["gans"]:
        assert gan["validation"]["chi2_ndf"] > 0
        for name, digest in gan["files"].items():
            path = index_path.parent / "generators" / gan["name"] / name
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
        assert {"generator.npz", "generator.json"} <= set(gan["files"])
    metrics = json.loads((index_path.parent / "metrics.json").read_text())
    assert metrics["gans"] == len(SLICES)
