"""Which job runs in which image: the LCG view table, the recipes' views, submit and doctor."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from fcgtainer.config.job import available_jobs, load_job
from fcgtainer.images import recipe as rc
from fcgtainer.images import support
from fcgtainer.versions import found, require, satisfies, unmet

pytestmark = pytest.mark.unit
Run = Callable[..., tuple[int, str, str]]

# Values recipes/lcg-views.yaml leaves null for the views the shipped recipes name. Filling one
# in (with its source) makes this test fail on purpose: then check it and drop it from here.
UNCONFIRMED = {
    ("centos7-cvmfs-cuda", "tensorflow"),
    ("el9-cvmfs-cuda", "python"),
    ("el9-cvmfs-cuda", "tensorflow"),
}


def recipe_views() -> dict[str, str]:
    """Every recipe (Apptainer.def and recipes/**/*.def) that names a default LCG view."""
    out = {}
    for name, path in rc.available().items():
        view = support.recipe_view(path.read_text())
        if view is not None:
            out[name] = view
    return out


def test_the_recipes_name_views_the_table_knows_and_the_jobs_accept() -> None:
    table = support.load_views()
    views = recipe_views()
    assert views["centos7-cvmfs-cuda"] == "LCG_102cuda/x86_64-centos7-gcc8-opt"
    assert "el9-cvmfs-cuda" in views
    gaps = set()
    for recipe, view in views.items():
        assert view in table, f"{recipe}: {view} is not in recipes/lcg-views.yaml"
        row = table[view]
        assert row.sources, f"{view}: a row without a source"
        for name, path in available_jobs().items():
            job = load_job(str(path))
            if job.images and recipe not in job.images:
                continue
            for key in ("python", "tensorflow"):
                spec, have = getattr(job.requires, key), getattr(row, key)
                if spec is None:
                    continue
                if have is None:
                    gaps.add((recipe, key))
                else:
                    assert satisfies(have, spec), f"{name} needs {key} {spec}; {view} has {have}"
    assert gaps == UNCONFIRMED


def test_every_job_names_known_recipes_and_the_default_fits_fastcalogan() -> None:
    known = rc.available()
    for path in available_jobs().values():
        job = load_job(str(path))
        assert set(job.images) <= set(known), f"{path}: images: unknown recipe"
    facts = support.image_facts(rc.DEFAULT)
    assert facts.glibc == "2.17" and facts.python == "3.9.12"
    fastcalogan = load_job("fastcalogan")
    assert rc.DEFAULT in fastcalogan.images
    assert fastcalogan.requires.python and satisfies(facts.python, fastcalogan.requires.python)


def test_pip_images_take_python_from_the_os_and_tf_from_the_requirements() -> None:
    pins = (rc.recipes_dir() / "requirements/fastcalogan.txt").read_text()
    for recipe in ("standalone", "standalone-debian"):
        facts = support.image_facts(recipe)
        assert facts.view is None and facts.python == "3.11"
        assert facts.tensorflow and f"=={facts.tensorflow}" in pins


def test_lamarr_is_refused_in_the_cvmfs_images_and_fits_standalone() -> None:
    lamarr = load_job("lamarr")
    for recipe in ("centos7-cvmfs-cuda", "el9-cvmfs-cuda"):
        pairing = support.check_pairing(lamarr, recipe)
        assert pairing.failures and "does not run in image" in pairing.failures[0][2]
    assert not support.check_pairing(lamarr, "standalone-debian").failures


@pytest.fixture
def images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty images directory (nothing is built in unit tests)."""
    directory = tmp_path / "images"
    directory.mkdir()
    monkeypatch.setenv("FCGTAINER_IMAGES_DIR", str(directory))
    return directory


def fake_sif(directory: Path, recipe: str | None) -> Path:
    """A .sif file with (or without) the provenance JSON `fcgtainer build` writes beside it."""
    sif = directory / f"{recipe or 'mystery'}-0123abcd.sif"
    sif.write_bytes(b"not really an image")
    if recipe is not None:
        sif.with_suffix(".json").write_text(json.dumps({"recipe": recipe, "sha256": "x"}))
    return sif


def test_submit_fastcalogan_to_lxplus_in_the_centos7_image_names_a_supported_view(
    run_cli: Run, images: Path
) -> None:
    for ref in ("centos7-cvmfs-cuda", str(fake_sif(images, "centos7-cvmfs-cuda"))):
        code, out, err = run_cli(
            "submit", "fastcalogan", "--site", "lxplus", "--image", ref, "--dry-run"
        )
        assert code == 0, err
        first = out.splitlines()[0]
        assert "view LCG_102cuda/x86_64-centos7-gcc8-opt" in first
        assert "Python 3.9.12" in first


@pytest.mark.parametrize("recipe", ["centos7-cvmfs-cuda", "el9-cvmfs-cuda"])
def test_submit_lamarr_in_an_unsupported_image_is_one_line_and_exit_2(
    run_cli: Run, images: Path, recipe: str
) -> None:
    for ref in (recipe, str(fake_sif(images, recipe))):
        code, out, err = run_cli("submit", "lamarr", "--site", "lxplus", "--image", ref)
        assert code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        line = lines[0]
        assert line.startswith("error: job lamarr does not run in image " + recipe)
        assert "fix: --image standalone-debian or standalone" in line
        assert "submitted" not in out


def test_a_sif_without_provenance_is_a_warning_not_a_refusal(run_cli: Run, images: Path) -> None:
    sif = fake_sif(images, None)
    code, out, err = run_cli(
        "submit", "lamarr", "--site", "lxplus", "--image", str(sif), "--dry-run"
    )
    assert code == 0, err
    assert "warning: image recipe" in out and "not checked" in out


def test_doctor_checks_the_job_in_its_image(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    from fcgtainer.host import doctor

    monkeypatch.setattr(doctor, "host_driver", lambda: None)
    code, out, _ = run_cli("doctor", "--job", "fastcalogan", "--image", "centos7-cvmfs-cuda")
    assert "LCG_102cuda/x86_64-centos7-gcc8-opt" in out and "3.9.12" in out
    assert "not visible" in out
    code, out, _ = run_cli("doctor", "--job", "lamarr", "--image", "centos7-cvmfs-cuda")
    assert code == 1 and "does not run in image" in out and "standalone-debian" in out


def test_driver_against_cuda() -> None:
    assert support.driver_row("11.2", "440.33.01")[1] == "fail"
    assert support.driver_row("11.2", "470.57.02")[1] == "ok"
    assert support.driver_row("12.2", "470.57.02")[1] == "fail"
    assert support.driver_row("12.2", None)[1] == "info"


def test_version_ranges() -> None:
    assert satisfies("3.9.12", ">=3.9") and not satisfies("3.8.6", ">=3.9")
    assert satisfies("2.12.0", ">=2.12,<3") and not satisfies("3.0", ">=2.12,<3")
    assert satisfies("2.12.1", "==2.12") and not satisfies("2.13.0", "==2.12")
    assert satisfies("2.16.0rc1", ">=2.16") and satisfies("3.11", "!=3.10")
    assert unmet({"python": ">=3.9", "tensorflow": ">=2.12"}, {"python": "3.8.6"}) == [
        "python 3.8.6 found, >=3.9 needed"
    ]
    with pytest.raises(SystemExit, match=r"tensorflow 2\.8\.0 found, >=2\.12 needed"):
        require({"tensorflow": ">=2.12"}, {"tensorflow": "2.8.0"})
    with pytest.raises(ValueError):
        satisfies("3.9", "~=3.9")
    here = found()
    assert here["python"] and satisfies(here["python"], ">=3.10")
    require({"python": ">=3.9"}, here)


def test_docs_render_every_view_of_the_table() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs/images.md").read_text()
    for name, view in support.load_views().items():
        row = next((line for line in docs.splitlines() if line.startswith(f"| `{name}`")), None)
        assert row is not None, f"docs/images.md lacks {name}: copy it from recipes/lcg-views.yaml"
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        assert cells[1] == (view.python or "unconfirmed")
        assert cells[2] == (view.tensorflow or "unconfirmed")
