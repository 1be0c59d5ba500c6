"""Events from elsewhere: HepMC2 or HepMC3 ASCII files, plain or compressed.

A run reads one file or every file of one directory (in name order), staged
as the job's ``hepmc`` input before submission (never downloaded at run time).
Each file is checked for its end-of-listing footer before any of its events is
used (a truncated file otherwise reads as a shorter one: the HepMC reader stops
at the cut with a message on stderr and no error); each event must have beam
particles, from whose end vertex SQLamarr finds the primary vertex. As HepMC3
(and so SQLamarr) defines them, beams are the particles that no vertex produced,
whatever their status: LHCb's generators give their beam protons status 3.
Events are converted to MeV and mm (LHCb's units) if written otherwise; status
codes pass unchanged (SQLamarr's particle selection reads LHCb's own codes).
Every problem names the file, the event and what is wrong.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import InputError

#: End-of-listing lines of the two ASCII formats.
FOOTERS = (b"HepMC::IO_GenEvent-END_EVENT_LISTING", b"HepMC::Asciiv3-END_EVENT_LISTING")
_OPENERS: dict[str, Callable[[Path], io.BufferedIOBase]] = {
    ".gz": lambda p: gzip.open(p, "rb"),  # noqa: SIM115 (a factory: the caller closes)
    ".bz2": lambda p: bz2.open(p, "rb"),  # noqa: SIM115
    ".xz": lambda p: lzma.open(p, "rb"),  # noqa: SIM115
}


def input_files(path: Path) -> list[Path]:
    """The HepMC files of a run: ``path`` itself, or the files in it in name order."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputError(f"{path}: no such HepMC file or directory (stage it before submitting)")
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputError(f"{path}: directory holds no HepMC file")
    return files


def _lines(path: Path) -> Iterator[bytes]:
    """The lines of a HepMC file, decompressed if its suffix says so."""
    opener = _OPENERS.get(path.suffix)
    try:
        with opener(path) if opener else path.open("rb") as stream:
            yield from stream
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise InputError(f"{path}: unreadable ({exc})") from exc


def scan_file(path: Path) -> list[int]:
    """Event numbers of the file's event lines; ``InputError`` if it is truncated.

    One pass over the (decompressed) text: the footer must be the last line, and
    the count of event lines is what the reader must deliver (it stops silently
    at an event it cannot parse).
    """
    numbers: list[int] = []
    last = b""
    for line in _lines(path):
        if line.startswith(b"E "):
            fields = line.split(maxsplit=2)
            numbers.append(int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else -1)
        if line.strip():
            last = line.strip()
    if last not in FOOTERS:
        complete = numbers[:-1]  # the last event line started the part that was cut
        where = (
            f"after event {complete[-1]} (#{len(complete)} in the file)"
            if complete
            else "before the end of its first event"
        )
        raise InputError(
            f"{path}: truncated {where}: no END_EVENT_LISTING line at the end "
            "(an incomplete copy or an interrupted generator)"
        )
    return numbers


def check_event(event: Any, path: Path, index: int) -> None:
    """Raise ``InputError`` if the event cannot be simulated."""
    if not event.particles:
        raise InputError(
            f"{path}: event {event.event_number} (#{index + 1} in the file): no particles"
        )
    if not any(beam.end_vertex is not None for beam in event.beams):
        raise InputError(
            f"{path}: event {event.event_number} (#{index + 1} in the file): no beam particles "
            "(particles no vertex produced, ending in a vertex); the primary vertex is where "
            "the beams end"
        )


def hepmc_events(files: list[Path], n_events: int) -> Iterator[Any]:
    """Yield ``n_events`` events from ``files`` in order, in MeV and mm.

    Raises
    ------
    InputError
        A truncated file, an event without beam particles, or fewer events in
        all the files together than ``n_events``.
    """
    import pyhepmc

    listed = [scan_file(path) for path in files]
    yielded = 0
    for path, numbers in zip(files, listed, strict=True):
        read = 0
        with pyhepmc.open(str(path)) as reader:
            for index, event in enumerate(reader):
                if yielded == n_events:
                    return
                check_event(event, path, index)
                event.set_units(pyhepmc.Units.MEV, pyhepmc.Units.MM)
                yield event
                yielded += 1
                read = index + 1
        if read < len(numbers) and yielded < n_events:
            raise InputError(
                f"{path}: event {numbers[read]} (#{read + 1} in the file): the HepMC reader "
                "cannot parse it (and stops there; see its message above)"
            )
    if yielded < n_events:
        names = files[0].parent if len(files) > 1 else files[0]
        raise InputError(
            f"{names}: {yielded} events in {len(files)} file(s), params.events asks for {n_events}"
        )
