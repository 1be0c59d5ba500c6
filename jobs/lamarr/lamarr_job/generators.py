"""Event generation: a particle gun or Pythia 8, written as HepMC2 ASCII files.

SQLamarr 0.0rc7 reads HepMC2 ASCII (``HepMC2DataLoader``), so events are written
in that format, in MeV and mm, one file per batch. The beam particles enter the
collision vertex, which is how SQLamarr's loader recognises the primary vertex.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyhepmc

from .chain import Decay
from .errors import ConfigError
from .settings import BEAM_SPOT_SIGMA_MM, GUN_MASSES_GEV, GunSettings, PythiaSettings
from .signal import passes_cut, signal_products

BEAM_ENERGY_GEV = 6800.0
PROTON_MASS_GEV = 0.93827


def _event(
    number: int,
    px: npt.NDArray[np.float64],
    py: npt.NDArray[np.float64],
    pz: npt.NDArray[np.float64],
    m: npt.NDArray[np.float64],
    pid: npt.NDArray[np.int32],
    status: npt.NDArray[np.int32],
    parents: npt.NDArray[np.int32],
    vertex: npt.NDArray[np.float64],
) -> pyhepmc.GenEvent:
    """Build a GenEvent from HEPEVT-like arrays in GeV and mm (parents 1-based)."""
    en = np.sqrt(px**2 + py**2 + pz**2 + m**2)
    event = pyhepmc.GenEvent()
    event.from_hepevt(
        number,
        px,
        py,
        pz,
        en,
        m,
        pid,
        status,
        parents=parents,
        vx=vertex[0],
        vy=vertex[1],
        vz=vertex[2],
        vt=vertex[3],
    )
    event.set_units(pyhepmc.Units.MEV, pyhepmc.Units.MM)
    event.weights = [1.0]
    return event


def gun_events(settings: GunSettings, n_events: int, seed: int) -> Iterator[pyhepmc.GenEvent]:
    """Yield particle-gun events: two beam protons into a vertex, then the gun particles.

    Momenta are log-uniform in ``[p_min, p_max]`` GeV, pseudorapidity and azimuth
    uniform; the vertex is drawn from the luminous region.
    """
    rng = np.random.default_rng(seed)
    species = np.array(settings.species, dtype=np.int32)
    n = settings.particles
    for number in range(n_events):
        apid = rng.choice(species, size=n)
        sign = rng.choice(np.array([-1, 1], dtype=np.int32), size=n)
        p = np.exp(rng.uniform(math.log(settings.p_min), math.log(settings.p_max), n))
        eta = rng.uniform(settings.eta_min, settings.eta_max, n)
        phi = rng.uniform(-math.pi, math.pi, n)
        pt = p / np.cosh(eta)
        beam_pz = math.sqrt(BEAM_ENERGY_GEV**2 - PROTON_MASS_GEV**2)
        px = np.r_[0.0, 0.0, pt * np.cos(phi)]
        py = np.r_[0.0, 0.0, pt * np.sin(phi)]
        pz = np.r_[beam_pz, -beam_pz, pt * np.sinh(eta)]
        m = np.r_[PROTON_MASS_GEV, PROTON_MASS_GEV, [GUN_MASSES_GEV[int(a)] for a in apid]]
        pid = np.r_[2212, 2212, apid * sign].astype(np.int32)
        status = np.r_[4, 4, np.ones(n)].astype(np.int32)
        parents = np.zeros((n + 2, 2), dtype=np.int32)
        parents[2:] = (1, 2)
        spot = rng.normal(size=3) * np.array(BEAM_SPOT_SIGMA_MM)
        vertex = np.zeros((4, n + 2))
        vertex[:3] = spot[:, None]
        yield _event(number, px, py, pz, m, pid, status, parents, vertex)


#: Events Pythia may make without one holding the signal chain before a run stops.
SIGNAL_SEARCH_LIMIT = 10_000


def start_pythia(settings: PythiaSettings, seed: int) -> tuple[Any, tuple[str, ...]]:
    """Return Pythia, initialised, and every setting line it was given, in order.

    A decay of the signal chain that Pythia's decay table lacks (J/psi -> p pbar, say)
    is added as its mother's only open channel, isotropic phase space (``addChannel``,
    ``meMode`` 0), and said on stderr: the lines record it.
    """
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    _check_known(pythia.particleData, settings.signal)  # before an onMode line fails less clearly
    lines = list(settings.lines(seed))
    for line in lines:
        if not pythia.readString(line):
            raise ConfigError(f"Pythia rejected the setting {line!r}")
    for line in added_channels(pythia.particleData, settings.signal):
        print(f"pythia_signal: not in Pythia's decay table, added: {line}", file=sys.stderr)
        if not pythia.readString(line):
            raise ConfigError(f"Pythia rejected the setting {line!r}")
        lines.append(line)
    if not pythia.init():
        raise ConfigError("Pythia initialisation failed; check pythia_settings")
    return pythia, tuple(lines)


def _check_known(data: Any, chain: tuple[Decay, ...]) -> None:
    for decay in chain:
        if not data.isParticle(abs(decay.mother)):
            raise ConfigError(f"params.pythia_signal: Pythia knows no particle {decay.mother}")


def added_channels(data: Any, chain: tuple[Decay, ...]) -> list[str]:
    """``addChannel`` lines for the chain's decays that no open channel of Pythia matches.

    Raises
    ------
    ConfigError
        If a mother is no particle Pythia knows, or one Pythia does not decay.
    """
    _check_known(data, chain)
    lines: list[str] = []
    for decay in chain:
        entry = data.particleDataEntryPtr(abs(decay.mother))
        if not entry.mayDecay():
            raise ConfigError(
                f"params.pythia_signal: Pythia does not decay {decay.mother} (it lives to "
                f"reach the detector): add '{abs(decay.mother)}:mayDecay = on' to "
                "pythia_settings to decay it in the generator"
            )
        wanted = sorted(abs(d) for d in decay.daughters)
        channels = (entry.channel(i) for i in range(entry.sizeChannels()))
        if any(
            ch.onMode() != 0
            and sorted(abs(ch.product(j)) for j in range(ch.multiplicity())) == wanted
            for ch in channels
        ):
            continue
        # written for the particle: an antiparticle's decay gives the conjugate products
        sign = 1 if decay.mother > 0 else -1
        products = [sign * d if data.hasAnti(d) else d for d in decay.daughters]
        lines.append(f"{abs(decay.mother)}:addChannel = 1 1.0 0 {' '.join(map(str, products))}")
    return lines


def pythia_events(
    pythia: Any, settings: PythiaSettings, n_events: int
) -> Iterator[pyhepmc.GenEvent]:
    """Yield ``n_events`` events of an initialised Pythia (:func:`start_pythia`) as HepMC.

    With a signal chain, only events holding the whole chain (within the cut) are
    kept; a run that finds none in :data:`SIGNAL_SEARCH_LIMIT` events stops.
    """
    charged = (
        signal_products(settings.signal, lambda pid: pythia.particleData.chargeType(pid) != 0)
        if settings.signal
        else []
    )
    number = 0
    failures = 0
    searched = 0
    while number < n_events:
        if not pythia.next():
            failures += 1
            if failures > 10 * n_events + 100:
                raise RuntimeError("Pythia failed to generate events")
            continue
        if settings.signal and not passes_cut(
            pythia.event, settings.signal, charged, settings.signal_cut
        ):
            searched += 1
            if number == 0 and searched >= SIGNAL_SEARCH_LIMIT:
                chain = "; ".join(
                    f"{d.mother} -> {' '.join(map(str, d.daughters))}" for d in settings.signal
                )
                raise ConfigError(
                    f"params.pythia_signal: none of {searched} {settings.process} events held "
                    f"{chain!r} with its products {settings.signal_cut}: does the process "
                    f"make {settings.signal[0].mother}? (pythia_process, pythia_signal_cut)"
                )
            continue  # not a signal event: the run's events all hold the signal decay
        yield _from_pythia(number, pythia.event, settings.keep_partons)
        number += 1


def _from_pythia(number: int, record: Any, keep_partons: bool = False) -> pyhepmc.GenEvent:
    """Convert a Pythia event record to a GenEvent (GeV, mm in; MeV, mm out).

    Vertices follow the mother lists (as Pythia8ToHepMC does): a particle's
    production vertex is the end vertex of its first mother that has one, else a
    new vertex at its production point that all its mothers end in. Both beam
    protons end in one collision vertex, and only they keep the beam status 4:
    SQLamarr's loader treats the end vertex of every status-4 particle as
    primary, and diffractive sub-collisions have beam-like entries of their own.

    Unless ``keep_partons``, quarks, gluons and diquarks are left out and what
    they produced hangs from the collision vertex. SQLamarr's MCParticleSelector
    drops partons anyway and hands their production vertex (the collision) to
    their descendants, so the MC truth it builds is the same, at about half the
    cost: its graph traversal issues SQL queries per generator particle.
    """
    event = pyhepmc.GenEvent(pyhepmc.Units.GEV, pyhepmc.Units.MM)
    event.event_number = number
    size = record.size()
    particles: list[Any] = [None] * size
    for i in range(1, size):
        part = record[i]
        if i > 2 and not keep_partons and part.isParton():
            continue
        status = part.statusHepMC()
        if status == 4 and i > 2:
            status = 2
        gen = pyhepmc.GenParticle(
            pyhepmc.FourVector(part.px(), part.py(), part.pz(), part.e()), part.id(), status
        )
        gen.generated_mass = part.m()
        particles[i] = gen
    origin = record[3] if size > 3 else record[1]
    collision = pyhepmc.GenVertex(
        pyhepmc.FourVector(origin.xProd(), origin.yProd(), origin.zProd(), origin.tProd())
    )
    event.add_vertex(collision)
    end_vertex: dict[int, Any] = {}
    for beam in (1, 2):
        collision.add_particle_in(particles[beam])
        end_vertex[beam] = collision
    for i in range(3, size):
        if particles[i] is None:
            continue
        mothers = [m for m in record[i].motherList() if m > 0 and particles[m] is not None]
        if not mothers:
            collision.add_particle_out(particles[i])
            continue
        vertex = next((end_vertex[m] for m in mothers if m in end_vertex), None)
        if vertex is None:
            part = record[i]
            vertex = pyhepmc.GenVertex(
                pyhepmc.FourVector(part.xProd(), part.yProd(), part.zProd(), part.tProd())
            )
            event.add_vertex(vertex)
        for m in mothers:
            if m not in end_vertex:
                vertex.add_particle_in(particles[m])
                end_vertex[m] = vertex
        vertex.add_particle_out(particles[i])
    event.set_units(pyhepmc.Units.MEV, pyhepmc.Units.MM)
    event.weights = [1.0]
    return event


def write_batches(
    events: Iterator[pyhepmc.GenEvent], n_events: int, batch_size: int, directory: Path
) -> Iterator[tuple[Path, int]]:
    """Write events to HepMC2 files of ``batch_size`` events; yield (path, count).

    The last file holds the remainder, so every event is written exactly once.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for index, start in enumerate(range(0, n_events, batch_size)):
        count = min(batch_size, n_events - start)
        path = directory / f"batch_{index:05d}.hepmc2"
        with pyhepmc.io.WriterAsciiHepMC2(str(path)) as writer:
            for _ in range(count):
                writer.write(next(events))
        yield path, count
