"""Read what a submit-time check needs from an ELF shared object, in pure Python.

The class (32/64 bit), byte order, machine and the names in the dynamic symbol
table (``.dynsym``) tell whether a model library can be loaded on the target
nodes and exports the function a configuration names, without loading it: the
host that submits may be another architecture, and ``dlopen`` would run the
library's constructors in the CLI. Sixty lines of ``struct`` against the ELF
specification (System V gABI, "Object Files") rather than a dependency.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

#: e_machine values of the architectures fcgtainer runs on (gABI, "ELF Header").
MACHINES = {3: "i386", 40: "arm", 62: "x86_64", 183: "aarch64", 243: "riscv64", 21: "ppc64"}
SHT_DYNSYM = 11
STT_FUNC = 2
SHN_UNDEF = 0


class ElfError(ValueError):
    """The file is not an ELF object this reader understands."""


@dataclass(frozen=True)
class ElfInfo:
    """What matters about a shared object for loading it: class, machine, exports."""

    bits: int
    machine: str
    functions: frozenset[str]


def read_elf(path: Path) -> ElfInfo:
    """Return the class, machine and defined function symbols of ``.dynsym``.

    Raises
    ------
    ElfError
        If the file is not an ELF object (or is truncated).
    """
    data = path.read_bytes()
    if data[:4] != b"\x7fELF":
        raise ElfError("not an ELF file (no \\x7fELF magic)")
    if len(data) < 64:
        raise ElfError("truncated ELF header")
    bits = {1: 32, 2: 64}.get(data[4])
    order = {1: "<", 2: ">"}.get(data[5])
    if bits is None or order is None:
        raise ElfError(f"unknown ELF class {data[4]} or byte order {data[5]}")
    machine_id = struct.unpack_from(order + "H", data, 18)[0]
    machine = MACHINES.get(machine_id, f"e_machine={machine_id}")
    try:
        functions = _dynamic_functions(data, bits, order)
    except struct.error as exc:
        raise ElfError(f"truncated or damaged section table: {exc}") from exc
    return ElfInfo(bits, machine, functions)


def _dynamic_functions(data: bytes, bits: int, order: str) -> frozenset[str]:
    """Names of the functions defined in ``.dynsym`` (what ``dlsym`` can find)."""
    if bits == 64:
        shoff = struct.unpack_from(order + "Q", data, 0x28)[0]
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x3A)
        section = order + "IIQQQQIIQQ"
        symbol, sym_size = order + "IBBHQQ", 24
    else:
        shoff = struct.unpack_from(order + "I", data, 0x20)[0]
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x2E)
        section = order + "IIIIIIIIII"
        symbol, sym_size = order + "IIIBBH", 16
    sections = [struct.unpack_from(section, data, shoff + i * shentsize) for i in range(shnum)]
    names: set[str] = set()
    for sec in sections:
        if sec[1] != SHT_DYNSYM:
            continue
        offset, size, link = sec[4], sec[5], sec[6]
        strtab = sections[link][4]
        for start in range(offset, offset + size, sym_size):
            fields = struct.unpack_from(symbol, data, start)
            if bits == 64:
                name, info, shndx = fields[0], fields[1], fields[3]
            else:
                name, info, shndx = fields[0], fields[3], fields[5]
            if info & 0xF != STT_FUNC or shndx == SHN_UNDEF:
                continue
            end = data.index(b"\0", strtab + name)
            names.add(data[strtab + name : end].decode("utf-8", "replace"))
    return frozenset(names)
