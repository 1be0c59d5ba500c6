"""Recipes: definition files, their build arguments, content hash and composition (pure).

``{{ name }}`` in a recipe is a build argument filled in on the building host
(:mod:`fcgtainer.host.buildargs`: the Debian mirror of its apt sources, its CA bundle, where
the node-side scripts are installed). This module only reads files: no subprocess.
Relative ``%files`` sources are relative to the directory of the shipped recipes' parent
(:func:`fcgtainer.paths.shipped_root`: the checkout, or the wheel's ``_shipped``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fcgtainer.errors import ConfigError, NotFoundError
from fcgtainer.paths import shipped_root

DEFAULT = "centos7-cvmfs-cuda"
HASH_VERSION = b"fcgtainer-recipe-1\n"
IGNORED = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".git"})
_ARG = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_SECTION = re.compile(r"^%([A-Za-z]+)\b")
_HEADER = re.compile(r"^([A-Za-z]+):\s*(.*?)\s*$")


def recipes_dir() -> Path:
    """``$FCGTAINER_RECIPES``, else the shipped ``recipes/`` (see :mod:`fcgtainer.paths`)."""
    return Path(os.environ.get("FCGTAINER_RECIPES") or shipped_root() / "recipes")


def available() -> dict[str, Path]:
    """Every recipe by name: the default ``Apptainer.def`` and ``recipes/**/*.def``."""
    found: dict[str, Path] = {}
    default = shipped_root() / "Apptainer.def"
    if default.is_file():
        found[DEFAULT] = default
    directory = recipes_dir()
    for path in sorted(directory.rglob("*.def")):
        found.setdefault(path.relative_to(directory).with_suffix("").as_posix(), path)
    return found


def slug(name: str) -> str:
    """A recipe name as a file name (``base/standalone-debian`` -> ``base-standalone-debian``)."""
    return name.replace("/", "-")


def resolve(ref: str | None) -> tuple[str, Path]:
    """``(name, path)`` of a recipe given by name, by path, or None for the default."""
    known = available()
    name = ref or DEFAULT
    if name in known:
        return name, known[name]
    path = Path(name)
    if path.suffix == ".def" and path.is_file():
        return path.stem, path.resolve()
    raise NotFoundError(
        f"recipe {name!r}: no such recipe",
        f"known recipes: {', '.join(sorted(known)) or 'none'}; or give a path to a .def file",
    )


# --- parsing ------------------------------------------------------------------------------


def header(text: str) -> dict[str, str]:
    """The ``Key: value`` lines before the first section, keys lower-cased."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if _SECTION.match(line):
            break
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _HEADER.match(stripped)
        if match:
            out[match.group(1).lower()] = match.group(2)
    return out


def sections(text: str) -> dict[str, list[str]]:
    """Body lines of each section (``%post``, ``%files``...); repeated sections are joined."""
    out: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        match = _SECTION.match(line)
        if match:
            current = match.group(1).lower()
            out.setdefault(current, [])
        elif current is not None:
            out[current].append(line)
    return out


def files_of(text: str) -> list[tuple[str, str]]:
    """``(source, destination)`` of every ``%files`` line (destination defaults to source)."""
    pairs = []
    for line in sections(text).get("files", []):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.split()
        if len(parts) > 2:
            raise ConfigError(f"%files: {stripped!r}: expected 'source [destination]'")
        pairs.append((parts[0], parts[-1]))
    return pairs


# --- build arguments (their values come from fcgtainer.host.buildargs) ---------------


def substitute(text: str, source: str, args: Mapping[str, Callable[[], str]]) -> str:
    """Fill in ``{{ name }}`` build arguments, each computed once."""
    values: dict[str, str] = {}

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in args:
            raise ConfigError(
                f"{source}: unknown build argument {{{{ {name} }}}}",
                f"known: {', '.join(sorted(args))}",
            )
        if name not in values:
            values[name] = args[name]()
        return values[name]

    return _ARG.sub(value, text)


# --- content hash -------------------------------------------------------------------------


def tree_digest(path: Path) -> str:
    """sha256 of a file, or of a directory's names, modes and contents (caches ignored)."""
    h = hashlib.sha256()
    _feed(h, path, Path(path.name))
    return h.hexdigest()


def _feed(h: hashlib._Hash, path: Path, rel: Path) -> None:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        h.update(f"L {rel} {os.readlink(path)}\n".encode())
    elif stat.S_ISDIR(info.st_mode):
        h.update(f"D {rel}\n".encode())
        for child in sorted(path.iterdir()):
            if not ignored(child.name):
                _feed(h, child, rel / child.name)
    else:
        h.update(f"F {rel} {info.st_mode & 0o111:o} {info.st_size}\n".encode())
        h.update(_file_digest(path, info.st_size, info.st_mtime_ns).encode())


@cache
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ignored(name: str) -> bool:
    """Caches and bytecode never go into an image (and never change its hash)."""
    return name in IGNORED or name.endswith((".pyc", ".pyo"))


# --- the recipe ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """A loaded recipe: its text with arguments filled in, its files, its base, its hash."""

    name: str
    path: Path
    raw: str
    text: str
    files: tuple[tuple[Path, str], ...]
    base: Recipe | None
    digest: str

    @property
    def header(self) -> dict[str, str]:
        """The definition's header (``bootstrap``, ``from``, ``osversion``...)."""
        return header(self.text)

    @property
    def base_ref(self) -> str:
        """What the image starts from: a base recipe, a registry image, or a bootstrap."""
        head = self.header
        if self.base is not None:
            return f"recipe:{self.base.name}"
        boot = head.get("bootstrap", "?")
        what = head.get("from") or " ".join(
            v for v in (head.get("osversion"), head.get("mirrorurl")) if v
        )
        return f"{boot}:{what}"

    def chain(self) -> list[Recipe]:
        """This recipe's bases, outermost first, then the recipe itself."""
        return ([*self.base.chain()] if self.base else []) + [self]


def load(ref: str | None, args: Mapping[str, Callable[[], str]]) -> Recipe:
    """Load a recipe and (recursively) its base, and compute their content hashes.

    ``args`` computes each ``{{ name }}`` build argument (on demand, once); the host's are
    in :data:`fcgtainer.host.buildargs.BUILD_ARGS`.
    """
    name, path = resolve(ref)
    return _load(name, path, args, ())


def _load(
    name: str, path: Path, args: Mapping[str, Callable[[], str]], seen: tuple[str, ...]
) -> Recipe:
    if name in seen:
        raise ConfigError(f"{path}: From: recipes form a cycle: {' -> '.join([*seen, name])}")
    raw = path.read_text()
    text = substitute(raw, str(path), args)
    head = header(text)
    if "bootstrap" not in head:
        raise ConfigError(f"{path}: no 'Bootstrap:' header", "start the file with Bootstrap: ...")
    base = None
    if head["bootstrap"].lower() == "localimage":
        ref = head.get("from", "").removesuffix(".sif")
        known = available()
        if ref not in known:
            raise ConfigError(
                f"{path}: From: {head.get('from')!r} is not a recipe",
                f"a payload layer names its base recipe, one of: {', '.join(sorted(known))}",
            )
        base = _load(ref, known[ref], args, (*seen, name))
    files = []
    for source, dest in files_of(text):
        src = Path(source) if Path(source).is_absolute() else shipped_root() / source
        if not src.exists():
            raise NotFoundError(f"{path}: %files: {source}: no such file or directory")
        files.append((src, dest))
    h = hashlib.sha256(HASH_VERSION)
    h.update(raw.encode())
    if base is not None:
        h.update(f"base {base.digest}\n".encode())
    for src, dest in files:
        h.update(f"file {dest} {tree_digest(src)}\n".encode())
    return Recipe(name, path, raw, text, tuple(files), base, h.hexdigest())


def compose(
    recipe: Recipe, staging: Path, base_image: Path | None, labels: Mapping[str, str]
) -> str:
    """The definition Apptainer builds: files staged, base image resolved, labels added.

    Every ``%files`` source is copied (without caches) under ``staging`` first, so the
    image gets exactly what was hashed.
    """
    staged = iter(_stage(recipe.files, staging))
    out: list[str] = []
    section = None
    labelled = False
    for line in recipe.text.splitlines():
        match = _SECTION.match(line)
        if match:
            section = match.group(1).lower()
            out.append(line)
            if section == "labels" and not labelled:
                out += [f"    {k} {v}" for k, v in sorted(labels.items())]
                labelled = True
            continue
        stripped = line.strip()
        if section is None and base_image is not None and stripped.lower().startswith("from:"):
            out.append(f"From: {base_image}")
        elif section == "files" and stripped and not stripped.startswith("#"):
            out.append(f"    {next(staged)} {stripped.split()[-1]}")
        else:
            out.append(line)
    if not labelled and labels:
        out += ["", "%labels", *(f"    {k} {v}" for k, v in sorted(labels.items()))]
    return "\n".join(out) + "\n"


def _stage(files: tuple[tuple[Path, str], ...], staging: Path) -> list[Path]:
    """Copy each source into its own directory under ``staging``; return the copies."""
    copies = []
    for index, (src, _dest) in enumerate(files):
        target = staging / str(index) / src.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(
                src,
                target,
                symlinks=True,
                ignore=lambda _d, names: [n for n in names if ignored(n)],
            )
        else:
            shutil.copy2(src, target)
        copies.append(target)
    return copies
