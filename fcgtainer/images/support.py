"""Which job runs in which image: the LCG view table, image facts, and the pairing check.

The facts come from files in the checkout, never from a guess:

* ``recipes/lcg-views.yaml``: per LCG view (release and platform) the Python, TensorFlow,
  CUDA and cuDNN versions with the public source of each; ``null`` where unconfirmed;
* a recipe: its LCG view (the ``FCGTAINER_LCG_VIEW`` default in ``%environment``), its base's
  ``org.fcgtainer.os`` / ``org.fcgtainer.cuda`` labels, and for pip-built images the Python
  it installs and the TensorFlow pinned in ``recipes/requirements/``;
* a job: ``images`` (the recipes its payload runs in) and ``requires`` (version ranges).

``submit`` refuses a pairing the job rules out (:func:`refuse_unsupported`); what cannot be
confirmed is a warning, never a refusal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from fcgtainer.config.job import Job
from fcgtainer.errors import ConfigError
from fcgtainer.host.buildargs import BUILD_ARGS
from fcgtainer.host.doctor import Check, host_driver
from fcgtainer.images import recipe as rc
from fcgtainer.versions import satisfies

# glibc of each base OS: CentOS 7 ships 2.17 (DESIGN.md section 3), EL9 2.34, Debian 12 2.36
# (`ldd --version` on a Debian 12 host: "Debian GLIBC 2.36-9+deb12u14").
GLIBC = {"centos-7.9.2009": "2.17", "almalinux-9": "2.34", "debian-12": "2.36"}
# Python a pip-built image gets from its OS when the recipe names no python3.N package:
# Debian 12's python3 is 3.11 (3.11.2 on a Debian 12 host).
OS_PYTHON = {"debian-12": "3.11"}
# Oldest NVIDIA driver per CUDA major (CUDA minor version compatibility, NVIDIA's CUDA
# compatibility guide): 11.x needs >= 450.80.02, 12.x needs >= 525.60.13.
MIN_DRIVER = {11: "450.80.02", 12: "525.60.13"}
UNCONFIRMED = "unconfirmed"
_VIEW_KEYS = {"release", "platform", "python", "tensorflow", "cuda", "cudnn", "sources", "note"}
_VIEW_ENV = re.compile(r"FCGTAINER_LCG_VIEW=(?:\$\{FCGTAINER_LCG_VIEW:-([^}]+)\}|(\S+))")
_TF_PIN = re.compile(r"^\s*tensorflow(?:-cpu)?(?:\[[^\]]*\])?\s*==\s*([0-9][^\s;#]*)", re.M)


@dataclass(frozen=True)
class View:
    """One row of ``recipes/lcg-views.yaml``."""

    release: str
    platform: str
    python: str | None = None
    tensorflow: str | None = None
    cuda: str | None = None
    cudnn: str | None = None
    sources: tuple[str, ...] = ()
    note: str = ""

    @property
    def name(self) -> str:
        """``LCG_<release>/<platform>``, as FCGTAINER_LCG_VIEW names it."""
        return f"{self.release}/{self.platform}"


def views_file() -> Path:
    """The LCG view table of the checkout."""
    return rc.recipes_dir() / "lcg-views.yaml"


def load_views(path: Path | None = None) -> dict[str, View]:
    """Every view of the table by name; a malformed row is a ConfigError naming it."""
    path = path or views_file()
    data = yaml.safe_load(path.read_text()) or {}
    out: dict[str, View] = {}
    for index, row in enumerate(data.get("views", [])):
        where = f"{path}: views[{index}]"
        if not isinstance(row, dict) or not {"release", "platform"} <= set(row):
            raise ConfigError(f"{where}: needs release and platform", "see the keys at the top")
        unknown = set(row) - _VIEW_KEYS
        if unknown:
            raise ConfigError(
                f"{where}: unknown key {sorted(unknown)[0]!r}", "see the keys at the top"
            )

        def text(key: str, row: dict[str, Any] = row) -> str | None:
            return None if row.get(key) is None else str(row[key])

        view = View(
            str(row["release"]),
            str(row["platform"]),
            text("python"),
            text("tensorflow"),
            text("cuda"),
            text("cudnn"),
            tuple(str(s) for s in row.get("sources") or ()),
            str(row.get("note") or ""),
        )
        out[view.name] = view
    return out


# --- what an image carries ------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFacts:
    """What a recipe's image runs: OS, glibc, where Python comes from, versions (None: unknown)."""

    recipe: str
    os: str | None
    glibc: str | None
    view: str | None
    python: str | None
    tensorflow: str | None
    cuda: str | None
    source: str  # "LCG view <name>" or "pip (recipes/requirements)"
    view_row: View | None = None


def recipe_view(text: str) -> str | None:
    """The default ``FCGTAINER_LCG_VIEW`` a recipe's ``%environment`` sets, if any."""
    for line in rc.sections(text).get("environment", []):
        match = _VIEW_ENV.search(line)
        if match:
            return match.group(1) or match.group(2)
    return None


def _labels(text: str) -> dict[str, str]:
    out = {}
    for line in rc.sections(text).get("labels", []):
        parts = line.split(None, 1)
        if len(parts) == 2:
            out[parts[0]] = parts[1].strip()
    return out


_PLACEHOLDERS = {name: (lambda name=name: f"ARG-{name}") for name in BUILD_ARGS}


def _chain(name: str) -> list[tuple[str, str]]:
    """``(name, raw text)`` of a recipe and its bases, the recipe first (no build arguments)."""
    known = rc.available()
    out: list[tuple[str, str]] = []
    while name in known and name not in (n for n, _ in out):
        # build arguments stay placeholders: filling them in may ask apt or the network
        text = rc.substitute(known[name].read_text(), str(known[name]), _PLACEHOLDERS)
        out.append((name, text))
        head = rc.header(text)
        if head.get("bootstrap", "").lower() != "localimage":
            break
        name = head.get("from", "").removesuffix(".sif")
    return out


def image_facts(recipe: str, views: dict[str, View] | None = None) -> ImageFacts:
    """What the image built from ``recipe`` runs, read from the recipe and the view table."""
    chain = _chain(recipe)
    if not chain:
        known = ", ".join(sorted(rc.available()))
        raise ConfigError(f"recipe {recipe!r}: no such recipe", f"known recipes: {known}")
    labels: dict[str, str] = {}
    for _name, text in reversed(chain):
        labels.update(_labels(text))
    os_name = labels.get("org.fcgtainer.os")
    view_name = next((v for _n, t in chain if (v := recipe_view(t))), None)
    if view_name is not None:
        row = (views if views is not None else load_views()).get(view_name)
        return ImageFacts(
            recipe,
            os_name,
            GLIBC.get(os_name or ""),
            view_name,
            row.python if row else None,
            row.tensorflow if row else None,
            (row.cuda if row and row.cuda else None) or labels.get("org.fcgtainer.cuda"),
            f"LCG view {view_name}",
            row,
        )
    python = None
    tensorflow = None
    for _name, text in chain:
        found = re.search(r"\bpython3\.(\d+)\b", "\n".join(rc.sections(text).get("post", [])))
        if found and python is None:
            python = f"3.{found.group(1)}"
        if any(src.rstrip("/") == "recipes/requirements" for src, _ in rc.files_of(text)):
            pins = _TF_PIN.search((rc.recipes_dir() / "requirements/fastcalogan.txt").read_text())
            tensorflow = pins.group(1) if pins else None
    python = python or OS_PYTHON.get(os_name or "")
    source = "pip (recipes/requirements)" if tensorflow else "the OS"
    return ImageFacts(
        recipe,
        os_name,
        GLIBC.get(os_name or ""),
        None,
        python,
        tensorflow,
        labels.get("org.fcgtainer.cuda"),
        source,
    )


# --- which recipe an image is ---------------------------------------------------------------


def recipe_of(image_ref: str | None, job: Job) -> tuple[str | None, str]:
    """The recipe of the image a run uses, and the image as the user named it.

    A recipe name is its own answer; for a ``.sif`` path the provenance JSON that
    ``fcgtainer build`` writes beside it (``<recipe>-<hash>.json``) names the recipe.
    """
    ref = image_ref or job.image
    if ref is None:
        return None, "(none)"
    if not (ref.endswith(".sif") or "/" in ref) or ref in rc.available():
        return ref, ref
    path = Path(ref).expanduser()
    try:
        data: Any = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None, str(path)
    recipe = data.get("recipe") if isinstance(data, dict) else None
    return (str(recipe) if recipe else None), str(path)


# --- the pairing ----------------------------------------------------------------------------

Status = Literal["ok", "warn", "fail", "info"]


@dataclass
class Pairing:
    """The verdict on one job in one image: rows as (check, status, detail, fix)."""

    job: str
    image: str
    recipe: str | None
    facts: ImageFacts | None
    rows: list[tuple[str, Status, str, str]] = field(default_factory=list)

    @property
    def failures(self) -> list[tuple[str, Status, str, str]]:
        """The rows that rule the pairing out."""
        return [row for row in self.rows if row[1] == "fail"]

    def summary(self) -> str:
        """One line: the image, its recipe and view and the versions it carries."""
        f = self.facts
        if f is None:
            return f"image {self.image}: recipe unknown (no provenance beside it)"
        where = f"view {f.view}" if f.view else f"Python/TF from {f.source}"
        return (
            f"image {self.recipe} ({where}): Python {f.python or UNCONFIRMED}, "
            f"TensorFlow {f.tensorflow or UNCONFIRMED}, CUDA {f.cuda or '-'}, "
            f"glibc {f.glibc or '?'}"
        )


def check_pairing(job: Job, image_ref: str | None, views: dict[str, View] | None = None) -> Pairing:
    """Every check of ``job`` against the image ``image_ref`` (or the job's own image)."""
    recipe, shown = recipe_of(image_ref, job)
    if recipe is None:
        pairing = Pairing(job.name, shown, None, None)
        pairing.rows.append(
            (
                "image recipe",
                "warn",
                f"{shown}: no provenance JSON beside it names its recipe: not checked",
                "use an image built by `fcgtainer build`, or --image RECIPE",
            )
        )
        return pairing
    facts = image_facts(recipe, views)
    pairing = Pairing(job.name, shown, recipe, facts)
    rows = pairing.rows
    supported = list(job.images)
    if supported and recipe not in supported:
        why = job.requires.note or f"{job.source}: images: lists {', '.join(supported)}"
        rows.append(
            (
                "image recipe",
                "fail",
                f"job {job.name} does not run in image {recipe} ({why})",
                "--image " + " or ".join(supported),
            )
        )
    else:
        listed = "listed in the job's images" if supported else "the job lists no images: any"
        rows.append(("image recipe", "ok", f"{recipe} ({listed})", ""))
    if facts.view:
        known = facts.view_row is not None
        rows.append(
            (
                "LCG view",
                "ok" if known else "warn",
                facts.view + ("" if known else " (not in recipes/lcg-views.yaml)"),
                "" if known else "add it to recipes/lcg-views.yaml with its sources",
            )
        )
    for name in ("python", "tensorflow"):
        spec = getattr(job.requires, name)
        have = getattr(facts, name)
        label = "Python" if name == "python" else "TensorFlow"
        if spec is None:
            if have:
                rows.append((label, "info", f"{have} (the job states no range)", ""))
            continue
        if have is None:
            rows.append(
                (
                    label,
                    "warn",
                    f"{UNCONFIRMED} in {facts.source}; the job needs {spec}",
                    "confirm it on a node (source the view; print the version) and record it "
                    "in recipes/lcg-views.yaml",
                )
            )
        elif satisfies(have, spec):
            rows.append((label, "ok", f"{have} (the job needs {spec})", ""))
        else:
            rows.append(
                (
                    label,
                    "fail",
                    f"job {job.name} needs {label} {spec}; image {recipe} has {have} "
                    f"({facts.source})",
                    "--image " + " or ".join(supported)
                    if supported
                    else "--image with a newer view (see docs/images.md)",
                )
            )
    return pairing


def refuse_unsupported(job: Job, image_ref: str | None) -> Pairing:
    """The pairing, or a ConfigError (exit 2) in one line naming job, image and fix."""
    pairing = check_pairing(job, image_ref)
    failures = pairing.failures
    if failures:
        _name, _status, detail, fix = failures[0]
        raise ConfigError(f"{detail}; fix: {fix}")
    return pairing


# --- the GPU driver against the image's CUDA ------------------------------------------------


def driver_row(cuda: str | None, driver: str | None) -> tuple[str, Status, str, str]:
    """The host's NVIDIA driver (None: not visible here) against the image's CUDA."""
    if not cuda:
        return ("GPU driver vs CUDA", "info", "the image ships no CUDA runtime", "")
    major = int(cuda.split(".")[0])
    need = MIN_DRIVER.get(major)
    wanted = f"CUDA {cuda} needs driver >= {need}" if need else f"CUDA {cuda}"
    if driver is None:
        return (
            "GPU driver vs CUDA",
            "info",
            f"not visible (no nvidia-smi here); {wanted}",
            "run doctor on a GPU node to compare",
        )
    if need and not satisfies(driver, f">={need}"):
        return (
            "GPU driver vs CUDA",
            "fail",
            f"driver {driver} < {need}: {wanted}",
            "use a node with a newer driver, or an image with an older CUDA",
        )
    return ("GPU driver vs CUDA", "ok", f"driver {driver}; {wanted}", "")


def check_job_image(job_ref: str, image: str | None) -> list[Check]:
    """Doctor's rows for a job in its image: recipe, LCG view, Python, TensorFlow, GPU driver."""
    from fcgtainer.config.job import load_job

    job = load_job(job_ref)
    pairing = check_pairing(job, image)
    checks = [Check(name, status, detail, fix) for name, status, detail, fix in pairing.rows]
    if pairing.facts is not None:
        checks.append(Check(*driver_row(pairing.facts.cuda, host_driver())))
    return checks
