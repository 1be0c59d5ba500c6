"""Events from elsewhere: HepMC2 and HepMC3 files, plain or gzipped, checked before use."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lamarr_testing import read_trees, run_task
from lhcb_testing import LHCB_MODELS, fixed_momentum_event, write_hepmc2, write_hepmc3

N_EVENTS = 12


@pytest.fixture(scope="module")
def events() -> list:
    return [fixed_momentum_event(100 + k, 5000.0 * (1 + k % 3), 4) for k in range(N_EVENTS)]


def _run(tmp: Path, source: Path, **params: object) -> dict:
    params = {"run": 3, "events": N_EVENTS, "batch_size": 5, "generator": "hepmc", **params}
    return run_task(tmp / "out", LHCB_MODELS, _inputs={"hepmc": str(source)}, **params)


def test_hepmc2_and_gzipped_hepmc3_give_the_same_ntuple(tmp_path: Path, events: list) -> None:
    two = write_hepmc2(tmp_path / "in2.hepmc2", events)
    three = write_hepmc3(tmp_path / "in3.hepmc3.gz", events)
    with gzip.open(three, "rb") as handle:
        assert b"Asciiv3" in handle.read(200)
    first = _run(tmp_path / "a", two)
    second = _run(tmp_path / "b", three)
    assert first["events"] == second["events"] == N_EVENTS
    a = read_trees(tmp_path / "a" / "out" / first["ntuple"])
    b = read_trees(tmp_path / "b" / "out" / second["ntuple"])
    assert len(a["MCTracks"]["p"]) == 4 * N_EVENTS
    for tree in ("MCTracks", "Tracks", "PVs"):
        for column, values in a[tree].items():
            np.testing.assert_array_equal(b[tree][column], values, err_msg=f"{tree}.{column}")


def test_a_directory_per_run_in_name_order(tmp_path: Path, events: list) -> None:
    run_dir = tmp_path / "input" / "run5"
    run_dir.mkdir(parents=True)
    write_hepmc3(run_dir / "b.hepmc3", events[6:])
    write_hepmc2(run_dir / "a.hepmc2", events[:6])
    summary = _run(tmp_path, tmp_path / "input", run=5, hepmc_path="run{run}")
    trees = read_trees(tmp_path / "out" / summary["ntuple"])
    assert summary["events"] == N_EVENTS
    assert trees["provenance"]["settings"]["generator"]["path"] == str(run_dir)
    # event by event, in file and then event order: momenta 5, 10, 15, 5, ... GeV
    per_event = trees["MCTracks"]["p"].reshape(N_EVENTS, 4)[:, 0]
    np.testing.assert_allclose(per_event, [5000.0 * (1 + k % 3) for k in range(N_EVENTS)])


def test_truncated_file_names_file_and_event(tmp_path: Path, events: list) -> None:
    from lamarr_job.errors import InputError

    whole = write_hepmc2(tmp_path / "whole.hepmc2", events).read_text()
    cut = whole.index(f"E {100 + 5} ")  # in the middle of the listing, after event 104
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "cut.hepmc2").write_text(whole[: cut + 40])
    with pytest.raises(InputError, match=r"cut\.hepmc2: truncated after event 10[45]"):
        _run(tmp_path, tmp_path / "input")
    assert not (tmp_path / "out" / "lamarr_run000003.root").exists()


def _without_beams(number: int) -> Any:
    """An event of particles that no vertex produces and none ends in: no collision."""
    import pyhepmc

    event = pyhepmc.GenEvent(pyhepmc.Units.MEV, pyhepmc.Units.MM)
    event.event_number = number
    for _ in range(4):
        momentum = pyhepmc.FourVector(100.0, 50.0, 5000.0, 5003.0)
        event.add_particle(pyhepmc.GenParticle(momentum, 211, 1))
    event.weights = [1.0]
    return event


def _orphan_vertex(number: int) -> Any:
    """An event whose particles come out of a vertex that nothing enters."""
    import pyhepmc

    event = pyhepmc.GenEvent(pyhepmc.Units.MEV, pyhepmc.Units.MM)
    event.event_number = number
    vertex = pyhepmc.GenVertex(pyhepmc.FourVector(0.0, 0.0, 0.0, 0.0))
    event.add_vertex(vertex)
    for _ in range(4):
        momentum = pyhepmc.FourVector(100.0, 50.0, 5000.0, 5003.0)
        vertex.add_particle_out(pyhepmc.GenParticle(momentum, 211, 1))
    event.weights = [1.0]
    return event


def test_event_without_beam_particles_is_named(tmp_path: Path, events: list) -> None:
    import pyhepmc
    from lamarr_job.errors import InputError

    broken = [*events]
    broken[7] = _without_beams(107)
    path = write_hepmc3(tmp_path / "nobeam.hepmc3", broken)
    with pyhepmc.open(str(path)) as reader:
        assert sum(1 for _ in reader) == N_EVENTS
    with pytest.raises(InputError, match=r"nobeam\.hepmc3: event 107 \(#8 in the file\): no beam"):
        _run(tmp_path, path)
    assert not list((tmp_path / "out").glob("*.root"))


@pytest.mark.parametrize("suffix", ["hepmc3", "hepmc2"])
def test_event_the_reader_cannot_parse_is_named(tmp_path: Path, events: list, suffix: str) -> None:
    """The HepMC reader stops at an event it cannot parse, as if the file ended there."""
    import pyhepmc
    from lamarr_job.errors import InputError

    broken = [*events]
    broken[7] = _orphan_vertex(107)
    write = write_hepmc3 if suffix == "hepmc3" else write_hepmc2
    path = write(tmp_path / f"orphan.{suffix}", broken)
    with pyhepmc.open(str(path)) as reader:
        assert sum(1 for _ in reader) == 7
    with pytest.raises(
        InputError, match=rf"orphan\.{suffix}: event 107 \(#8 in the file\): the HepMC"
    ):
        _run(tmp_path, path)


def test_fewer_events_than_asked_is_an_error(tmp_path: Path, events: list) -> None:
    from lamarr_job.errors import InputError

    path = write_hepmc2(tmp_path / "short.hepmc2", events[:5])
    with pytest.raises(InputError, match=f"5 events in 1 file.*asks for {N_EVENTS}"):
        _run(tmp_path, path)


def test_hepmc_generator_needs_the_input(tmp_path: Path) -> None:
    from lamarr_job.errors import ConfigError

    with pytest.raises(ConfigError, match=r"spec\.inputs\.hepmc"):
        run_task(tmp_path, LHCB_MODELS, run=1, generator="hepmc")


def test_lhcb_beams_with_status_3(tmp_path: Path, events: list) -> None:
    """LHCb's generators give the beam protons status 3 (not HepMC3's 4)."""
    lines = []
    for line in write_hepmc2(tmp_path / "plain.hepmc2", events).read_text().splitlines():
        fields = line.split(" ")
        if fields[0] == "P" and fields[8] == "4":
            fields[8] = "3"
        lines.append(" ".join(fields))
    lhcb = tmp_path / "lhcb.mc2"
    lhcb.write_text("\n".join(lines) + "\n")
    assert " 3 0 0 " in lhcb.read_text() and " 4 0 0 " not in lhcb.read_text()
    summary = _run(tmp_path, lhcb)
    assert summary["primary_vertices"] == summary["events"] == N_EVENTS
    assert summary["charged_particles"] == 4 * N_EVENTS
