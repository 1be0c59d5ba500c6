"""Images: recipe composition, content hash, cached layered builds and provenance.

A recipe is an Apptainer definition file: ``Apptainer.def`` (the default image) or
``recipes/<name>.def``. A thin payload layer names its base with ``Bootstrap: localimage``
and ``From: <recipe>.sif``; the base is a recipe of its own, built first. Each layer is
keyed by a content hash of its text and of every file its ``%files`` copies (and of its
base's hash), so a second ``build`` with nothing changed never calls Apptainer, and a change
to a payload file rebuilds only the payload layer.

Images live in :func:`images_dir` as ``<name>-<hash>.sif`` with ``<name>-<hash>.json``
(provenance) beside them, and ``<name>.sif`` / ``<name>.json`` pointing at the newest build.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcgtainer.config.site import Site
from fcgtainer.errors import CommandError, PreflightError
from fcgtainer.host.buildargs import BUILD_ARGS
from fcgtainer.images import recipe as rc
from fcgtainer.paths import git_commit, state_dir

LABEL_PREFIX = "org.fcgtainer"
# A payload layer re-squashes the whole image on every code change: gzip (readable by every
# squashfuse and kernel) at its fastest level keeps that rebuild short; bases keep the default.
LAYER_MKSQUASHFS_ARGS = "-Xcompression-level 1"
# Older builds of a recipe kept beside the newest (runs in flight may still use them).
KEEP = 3
Lines = Callable[[str], None]


def images_dir(site: Site | None = None) -> Path:
    """Where built images and their provenance JSON live."""
    if site is not None and site.apptainer.images_dir:
        return Path(os.path.expandvars(site.apptainer.images_dir)).expanduser()
    explicit = os.environ.get("FCGTAINER_IMAGES_DIR")
    if explicit:
        return Path(explicit)
    return state_dir() / "images"


def find_image(recipe: str, site: Site | None = None) -> str:
    """The newest built image of ``recipe``: the hashed file its pointer names, if built."""
    pointer = images_dir(site) / f"{rc.slug(recipe)}.sif"
    with contextlib.suppress(OSError):
        if pointer.is_symlink():
            return str(pointer.resolve())
    return str(pointer)


def image_digest(path: Path) -> str | None:
    """The sha256 of an image, cached beside it keyed by size and mtime."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    cache = path.with_name(path.name + ".sha256.json")
    key = [stat.st_size, stat.st_mtime_ns]
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return str(cached["sha256"])
    except (FileNotFoundError, ValueError, KeyError):
        pass
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    with contextlib.suppress(OSError):
        cache.write_text(json.dumps({"key": key, "sha256": value}))
    return value


# --- one layer ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """The outcome of one layer: where its image is and whether it was built now."""

    recipe: str
    image: Path
    built: bool
    seconds: float
    provenance: Mapping[str, Any] = field(default_factory=dict)


def image_path(recipe: rc.Recipe, directory: Path) -> Path:
    """The content-addressed image file of a recipe."""
    return directory / f"{rc.slug(recipe.name)}-{recipe.digest[:16]}.sif"


def provenance_path(image: Path) -> Path:
    """The provenance JSON beside an image."""
    return image.with_suffix(".json")


def is_built(recipe: rc.Recipe, directory: Path) -> bool:
    """True when an image with this recipe's hash (and its provenance) exists."""
    image = image_path(recipe, directory)
    return image.is_file() and provenance_path(image).is_file()


def build(
    ref: str | None,
    *,
    site: Site | None = None,
    force: bool = False,
    on_line: Lines | None = None,
    on_layer: Callable[[str, str], None] | None = None,
    runner: Callable[[list[str], Path, Lines], int] | None = None,
) -> list[Layer]:
    """Build ``ref`` (and its bases) unless images with the same content hash exist.

    Parameters
    ----------
    ref
        A recipe name (``standalone-debian``), a ``.def`` path, or None for ``Apptainer.def``.
    force
        Rebuild the top layer even when it is cached (its bases stay cached).
    on_line
        Called with every line Apptainer prints.
    on_layer
        Called with ``(recipe, "cached" | "building" | "built")``.
    runner
        Runs the ``apptainer build`` argv in a directory, streaming lines; returns the exit
        code (tests substitute it).

    Returns
    -------
    list[Layer]
        Base first, the requested recipe last.
    """
    binary = site.apptainer.binary if site else "apptainer"
    directory = images_dir(site)
    run = with_cache_dir(runner or stream, cache_dir(site))
    top = rc.load(ref, BUILD_ARGS)
    layers: list[Layer] = []
    checked = False
    for recipe in top.chain():
        cached = is_built(recipe, directory) and not (force and recipe is top)
        if cached:
            image = image_path(recipe, directory)
            layers.append(Layer(recipe.name, image, False, 0.0, _read_json(image)))
            _point_latest(recipe, image)
            if on_layer:
                on_layer(recipe.name, "cached")
            continue
        if not checked:
            preflight(binary)
            checked = True
        if on_layer:
            on_layer(recipe.name, "building")
        layer = build_layer(
            recipe,
            directory,
            binary=binary,
            on_line=on_line or (lambda _line: None),
            runner=run,
            force=force and recipe is top,
        )
        layers.append(layer)
        if on_layer:
            on_layer(recipe.name, "built")
    return layers


def cache_dir(site: Site | None) -> str | None:
    """The site's ``apptainer.cache_dir`` (Apptainer's build cache), expanded, if set."""
    if site is None or not site.apptainer.cache_dir:
        return None
    return str(Path(os.path.expandvars(site.apptainer.cache_dir)).expanduser().absolute())


def with_cache_dir(
    runner: Callable[[list[str], Path, Lines], int], cache: str | None
) -> Callable[[list[str], Path, Lines], int]:
    """``runner`` with ``APPTAINER_CACHEDIR`` set to ``cache`` while it runs (if set)."""
    if cache is None:
        return runner

    def run(argv: list[str], cwd: Path, on_line: Lines) -> int:
        Path(cache).mkdir(parents=True, exist_ok=True, mode=0o700)
        previous = os.environ.get("APPTAINER_CACHEDIR")
        os.environ["APPTAINER_CACHEDIR"] = cache
        try:
            return runner(argv, cwd, on_line)
        finally:
            if previous is None:
                os.environ.pop("APPTAINER_CACHEDIR", None)
            else:
                os.environ["APPTAINER_CACHEDIR"] = previous

    return run


def preflight(binary: str) -> None:
    """What an unprivileged ``--fakeroot`` build needs; one clear error if it is missing."""
    from fcgtainer.host import doctor

    if shutil.which(binary) is None:
        raise PreflightError(
            f"{binary}: not found, cannot build images",
            "install Apptainer (or `module load apptainer`), or set apptainer.binary",
        )
    if os.geteuid() == 0:
        return
    for check in (doctor.check_userns(), doctor.check_subuid()):
        if check.status in ("fail", "warn"):
            raise PreflightError(
                f"cannot build unprivileged (--fakeroot): {check.name}: {check.detail}",
                f"{check.fix}; or build on a machine that allows it and copy the .sif here",
            )


def build_layer(
    recipe: rc.Recipe,
    directory: Path,
    *,
    binary: str,
    on_line: Lines,
    runner: Callable[[list[str], Path, Lines], int],
    force: bool = False,
) -> Layer:
    """Stage the files, write the composed definition, run ``apptainer build``, record it."""
    directory.mkdir(parents=True, exist_ok=True)
    target = image_path(recipe, directory)
    with _lock(directory / f".{rc.slug(recipe.name)}.lock"):
        if is_built(recipe, directory) and not force:  # someone else built it meanwhile
            _point_latest(recipe, target)
            return Layer(recipe.name, target, False, 0.0, _read_json(target))
        work = directory / ".build" / f"{rc.slug(recipe.name)}-{recipe.digest[:16]}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        base_image = image_path(recipe.base, directory) if recipe.base else None
        prov = provenance(recipe, binary, base_image)
        deffile = work / "recipe.def"
        deffile.write_text(rc.compose(recipe, work / "files", base_image, labels(prov)))
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        argv = [binary, "build"]
        if os.geteuid() != 0:
            argv.append("--fakeroot")
        if recipe.base is not None:
            argv.append(f"--mksquashfs-args={LAYER_MKSQUASHFS_ARGS}")
        argv += ["--force", str(tmp), str(deffile)]
        tail: deque[str] = deque(maxlen=40)

        def line(text: str) -> None:
            tail.append(text)
            on_line(text)

        start = time.monotonic()
        code = runner(argv, work, line)
        seconds = time.monotonic() - start
        if code != 0:
            tmp.unlink(missing_ok=True)
            raise build_error(argv, code, list(tail))
        os.replace(tmp, target)
        prov["build_seconds"] = round(seconds, 1)
        prov["image"] = target.name
        prov["sha256"] = image_digest(target)
        prov["size"] = target.stat().st_size
        _write_json(provenance_path(target), prov)
        _point_latest(recipe, target)
        shutil.rmtree(work, ignore_errors=True)
        prune(recipe.name, directory)
    return Layer(recipe.name, target, True, seconds, prov)


def stream(argv: list[str], cwd: Path, on_line: Lines) -> int:
    """Run ``argv`` with stdout and stderr merged, handing each line over as it comes."""
    env = dict(os.environ)
    env.setdefault("APPTAINER_COLOR", "never")
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
        )
    except FileNotFoundError:
        on_line(f"{argv[0]}: command not found")
        return 127
    assert proc.stdout is not None
    for text in proc.stdout:
        on_line(text.rstrip("\n"))
    return proc.wait()


_FAKEROOT_HINTS = (
    ("user namespace", "unprivileged user namespaces look disabled on this host"),
    ("subuid", "no subordinate uid range for this user"),
    ("fakeroot", "--fakeroot is not usable for this user"),
    ("newuidmap", "newuidmap/newgidmap (uidmap package) are missing or not setuid"),
)


def build_error(argv: list[str], code: int, tail: list[str]) -> CommandError | PreflightError:
    """A failed build as one clear error, naming a missing fakeroot prerequisite if seen."""
    text = "\n".join(tail)
    lowered = text.lower()
    for needle, what in _FAKEROOT_HINTS:
        if needle in lowered and ("error" in lowered or "fatal" in lowered):
            return PreflightError(
                f"apptainer build --fakeroot failed: {what}",
                "run `fcgtainer doctor`; ask the admins for user namespaces and an "
                "/etc/subuid + /etc/subgid range, or build elsewhere and copy the .sif",
            )
    return CommandError(
        argv, code, stderr=text, hint="run `fcgtainer build --verbose` to see the whole log"
    )


# --- provenance ---------------------------------------------------------------------------


def provenance(recipe: rc.Recipe, binary: str, base_image: Path | None) -> dict[str, Any]:
    """What went into an image: recipe, hash, base, commit, host, Apptainer, time."""
    base: dict[str, Any] = {"ref": recipe.base_ref}
    if base_image is not None:
        base["image"] = str(base_image)
        base["sha256"] = image_digest(base_image)
    return {
        "recipe": recipe.name,
        "recipe_file": str(recipe.path),
        "recipe_hash": recipe.digest,
        "base": base,
        "git_commit": git_commit(),
        "build_host": platform.node(),
        "apptainer_version": apptainer_version(binary),
        "build_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def labels(prov: Mapping[str, Any]) -> dict[str, str]:
    """Provenance as flat image labels (``org.fcgtainer.recipe_hash`` ...)."""
    out = {}
    for key, value in prov.items():
        if isinstance(value, Mapping):
            for sub, inner in value.items():
                out[f"{LABEL_PREFIX}.{key}_{sub}"] = str(inner)
        else:
            out[f"{LABEL_PREFIX}.{key}"] = str(value)
    return out


def apptainer_version(binary: str) -> str:
    """``apptainer --version`` (``unknown`` if it does not answer)."""
    from fcgtainer import proc

    try:
        return proc.run([binary, "--version"], timeout=30).stdout.strip()
    except CommandError:
        return "unknown"


def list_images(site: Site | None = None) -> list[dict[str, Any]]:
    """Provenance of every image in :func:`images_dir`, newest first, marking the latest."""
    directory = images_dir(site)
    if not directory.is_dir():
        return []
    latest = {p.resolve() for p in directory.glob("*.sif") if p.is_symlink()}
    found = []
    for meta in directory.glob("*-*.json"):
        if meta.is_symlink() or meta.name.endswith(".sha256.json"):
            continue
        data = _read_json(meta.with_suffix(".sif"))
        if not data:
            continue
        image = meta.with_suffix(".sif")
        data = {**data, "path": str(image), "latest": image.resolve() in latest}
        data["present"] = image.is_file()
        found.append(data)
    return sorted(found, key=lambda d: str(d.get("build_time", "")), reverse=True)


def prune(name: str, directory: Path, keep: int = KEEP) -> list[Path]:
    """Delete all but the ``keep`` newest builds of a recipe (each is hundreds of MB)."""
    pattern = re.compile(rf"^{re.escape(rc.slug(name))}-[0-9a-f]{{16}}\.sif$")
    builds = [p for p in directory.iterdir() if pattern.match(p.name) and not p.is_symlink()]
    builds.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for old in builds[keep:]:
        for path in (old, provenance_path(old), old.with_name(old.name + ".sha256.json")):
            path.unlink(missing_ok=True)
        removed.append(old)
    return removed


def _read_json(image: Path) -> dict[str, Any]:
    try:
        data = json.loads(provenance_path(image).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _point_latest(recipe: rc.Recipe, image: Path) -> None:
    """Make ``<name>.sif`` and ``<name>.json`` name this build (atomically)."""
    for suffix in (".sif", ".json"):
        link = image.with_name(rc.slug(recipe.name) + suffix)
        target = image.with_suffix(suffix).name
        if link.is_symlink() and os.readlink(link) == target:
            continue
        tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, link)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fd:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
