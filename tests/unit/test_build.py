"""Recipe hashing, layered cached builds and provenance, with a stand-in for apptainer build."""

from __future__ import annotations

import functools
import json
import os
import textwrap
from pathlib import Path

import pytest

from fcgtainer import paths
from fcgtainer.errors import ConfigError, NotFoundError, PreflightError
from fcgtainer.host import buildargs
from fcgtainer.host.buildargs import BUILD_ARGS
from fcgtainer.images import build, recipe

pytestmark = pytest.mark.unit


@pytest.fixture
def recipes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A recipes directory with a base and a thin payload layer copying ``payload/``."""
    root = tmp_path / "recipes"
    (root / "base").mkdir(parents=True)
    payload = tmp_path / "payload"
    (payload / "pkg" / "__pycache__").mkdir(parents=True)
    (payload / "pkg" / "__init__.py").write_text("X = 1\n")
    (payload / "pkg" / "__pycache__" / "x.pyc").write_bytes(b"junk")
    (tmp_path / "reqs.txt").write_text("numpy\n")
    (root / "base" / "os.def").write_text(
        textwrap.dedent(
            f"""\
            Bootstrap: debootstrap
            OSVersion: bookworm
            MirrorURL: {{{{ debian_mirror }}}}

            %files
                {tmp_path}/reqs.txt /opt/reqs.txt

            %post
                echo base
            """
        )
    )
    (root / "app.def").write_text(
        textwrap.dedent(
            f"""\
            Bootstrap: localimage
            From: base/os.sif

            %files
                {payload} /opt/payload

            %labels
                org.example.kind app
            """
        )
    )
    monkeypatch.setenv("FCGTAINER_RECIPES", str(root))
    monkeypatch.setenv("FCGTAINER_DEBIAN_MIRROR", "http://mirror.invalid/debian")
    monkeypatch.setenv("FCGTAINER_IMAGES_DIR", str(tmp_path / "images"))
    monkeypatch.setattr(build, "preflight", lambda binary: None)
    monkeypatch.setattr(build, "apptainer_version", lambda binary: "apptainer version 9.9")
    return tmp_path


class FakeBuild:
    """Stands in for ``apptainer build``: records the definition, writes an image."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str]] = []

    def __call__(self, argv: list[str], cwd: Path, on_line: build.Lines) -> int:
        deffile = Path(argv[-1])
        self.calls.append((argv, deffile.read_text()))
        on_line("INFO:    Creating SIF file...")
        Path(argv[-2]).write_bytes(b"SIF " + deffile.read_bytes())
        return 0


def test_layered_build_then_cached_without_apptainer(recipes: Path) -> None:
    fake = FakeBuild()
    layers = build.build("app", runner=fake)
    assert [(layer.recipe, layer.built) for layer in layers] == [("base/os", True), ("app", True)]
    base_def, app_def = fake.calls[0][1], fake.calls[1][1]
    fast = f"--mksquashfs-args={build.LAYER_MKSQUASHFS_ARGS}"
    assert fast not in fake.calls[0][0] and fast in fake.calls[1][0]
    assert "MirrorURL: http://mirror.invalid/debian" in base_def
    assert f"From: {layers[0].image}" in app_def
    assert "org.fcgtainer.recipe_hash " + layers[1].provenance["recipe_hash"] in app_def
    assert "org.example.kind app" in app_def
    staged = Path(app_def.split("%files")[1].split()[0])
    assert staged.name == "payload"  # staged copy: what was hashed, without caches
    prov = json.loads((layers[1].image.with_suffix(".json")).read_text())
    for key in ("recipe_hash", "git_commit", "build_host", "apptainer_version", "build_time"):
        assert key in prov
    assert prov["base"]["ref"] == "recipe:base/os"
    assert prov["base"]["sha256"] == build.image_digest(layers[0].image)
    assert prov["sha256"] == build.image_digest(layers[1].image)
    assert prov["apptainer_version"] == "apptainer version 9.9"

    again = FakeBuild()
    cached = build.build("app", runner=again)
    assert again.calls == [], "nothing changed: apptainer is not called"
    assert [layer.built for layer in cached] == [False, False]
    assert build.find_image("app") == str(layers[1].image)


def test_payload_change_rebuilds_only_the_payload_layer(recipes: Path) -> None:
    first = build.build("app", runner=FakeBuild())
    (recipes / "payload" / "pkg" / "__pycache__" / "y.pyc").write_bytes(b"more junk")
    fake = FakeBuild()
    build.build("app", runner=fake)
    assert fake.calls == [], "bytecode caches do not count"
    (recipes / "payload" / "pkg" / "__init__.py").write_text("X = 2\n")
    fake = FakeBuild()
    second = build.build("app", runner=fake)
    assert len(fake.calls) == 1 and "From:" in fake.calls[0][1]
    assert second[0].image == first[0].image and not second[0].built
    assert second[1].image != first[1].image and second[1].built
    assert build.find_image("app") == str(second[1].image)
    listed = build.list_images()
    assert [m["latest"] for m in listed if m["recipe"] == "app"].count(True) == 1


def test_base_change_rebuilds_both(recipes: Path) -> None:
    first = recipe.load("app", BUILD_ARGS)
    (recipes / "reqs.txt").write_text("numpy\nscipy\n")
    second = recipe.load("app", BUILD_ARGS)
    assert first.base and second.base
    assert first.base.digest != second.base.digest and first.digest != second.digest


def test_mirror_is_not_part_of_the_hash(recipes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = recipe.load("app", BUILD_ARGS).digest
    monkeypatch.setenv("FCGTAINER_DEBIAN_MIRROR", "http://other.invalid/debian")
    assert recipe.load("app", BUILD_ARGS).digest == first


def test_force_rebuilds_the_top_layer_only(recipes: Path) -> None:
    build.build("app", runner=FakeBuild())
    fake = FakeBuild()
    layers = build.build("app", runner=fake, force=True)
    assert [layer.built for layer in layers] == [False, True] and len(fake.calls) == 1


def test_failed_build_is_one_clear_error(recipes: Path) -> None:
    def failing(argv: list[str], cwd: Path, on_line: build.Lines) -> int:
        on_line("FATAL:   While performing build: some package failed")
        return 255

    with pytest.raises(Exception, match="some package failed") as info:
        build.build("base/os", runner=failing)
    assert "--verbose" in (getattr(info.value, "hint", "") or "")
    assert not list((recipes / "images").glob("*.sif"))


def test_fakeroot_problem_is_named(recipes: Path) -> None:
    def failing(argv: list[str], cwd: Path, on_line: build.Lines) -> int:
        on_line("FATAL:   could not use fakeroot: no mapping entry found in /etc/subuid for u")
        return 255

    with pytest.raises(PreflightError, match="subordinate uid"):
        build.build("base/os", runner=failing)


def test_preflight_names_missing_userns_and_subuid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fcgtainer.host import doctor

    monkeypatch.setattr(build.shutil, "which", lambda name: "/usr/bin/apptainer")
    monkeypatch.setattr(build.os, "geteuid", lambda: 1000)
    proc = tmp_path / "proc"
    (proc / "user").mkdir(parents=True)
    (proc / "user" / "max_user_namespaces").write_text("0\n")
    monkeypatch.setattr(doctor, "check_userns", functools.partial(doctor.check_userns, proc))
    with pytest.raises(PreflightError, match="user namespaces"):
        build.preflight("apptainer")
    (proc / "user" / "max_user_namespaces").write_text("15000\n")
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "subuid").write_text("someoneelse:100000:65536\n")
    monkeypatch.setattr(doctor, "check_subuid", functools.partial(doctor.check_subuid, etc))
    with pytest.raises(PreflightError, match="subuid"):
        build.preflight("apptainer")


def test_missing_apptainer_is_a_preflight_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    with pytest.raises(PreflightError, match="not found"):
        build.preflight("apptainer")


def test_unknown_recipe_lists_the_known(recipes: Path) -> None:
    with pytest.raises(NotFoundError, match="no such recipe") as info:
        recipe.load("nope", BUILD_ARGS)
    assert "app" in (info.value.hint or "") and "base/os" in (info.value.hint or "")


def test_unknown_build_argument(recipes: Path) -> None:
    (recipes / "recipes" / "bad.def").write_text("Bootstrap: docker\nFrom: {{ nope }}\n")
    with pytest.raises(ConfigError, match="unknown build argument"):
        recipe.load("bad", BUILD_ARGS)


def test_missing_files_source(recipes: Path) -> None:
    (recipes / "recipes" / "bad.def").write_text(
        "Bootstrap: docker\nFrom: x\n%files\n    /nonexistent/x /x\n"
    )
    with pytest.raises(NotFoundError, match="/nonexistent/x"):
        recipe.load("bad", BUILD_ARGS)


def test_base_cycle_is_an_error(recipes: Path) -> None:
    (recipes / "recipes" / "a.def").write_text("Bootstrap: localimage\nFrom: b.sif\n")
    (recipes / "recipes" / "b.def").write_text("Bootstrap: localimage\nFrom: a.sif\n")
    with pytest.raises(ConfigError, match="cycle"):
        recipe.load("a", BUILD_ARGS)


def test_build_args_from_the_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FCGTAINER_DEBIAN_MIRROR", "http://m.invalid/debian/")
    assert buildargs.debian_mirror() == "http://m.invalid/debian"
    bundle = tmp_path / "ca.pem"
    bundle.write_text("cert")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    assert buildargs.ca_bundle() == str(bundle)


def test_git_commit_without_git(tmp_path: Path) -> None:
    git = tmp_path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "packed-refs").write_text("# pack-refs\nabc123 refs/heads/main\n")
    assert paths.git_commit(tmp_path) == "abc123"
    (git / "refs" / "heads" / "main").write_text("def456\n")
    assert paths.git_commit(tmp_path) == "def456"
    assert paths.git_commit(tmp_path / "nothing") is None


def test_concurrent_builders_share_one_build(recipes: Path) -> None:
    fake = FakeBuild()
    build.build("base/os", runner=fake)
    assert len(fake.calls) == 1
    target = build.image_path(
        recipe.load("base/os", BUILD_ARGS), Path(os.environ["FCGTAINER_IMAGES_DIR"])
    )
    # another process built it while we waited for the lock: build_layer does not rebuild
    layer = build.build_layer(
        recipe.load("base/os", BUILD_ARGS),
        target.parent,
        binary="apptainer",
        on_line=lambda _line: None,
        runner=fake,
    )
    assert not layer.built and len(fake.calls) == 1


def test_old_builds_are_pruned(recipes: Path) -> None:
    images = recipes / "images"
    for n in range(build.KEEP + 2):
        (recipes / "payload" / "pkg" / "__init__.py").write_text(f"X = {n}\n")
        build.build("app", runner=FakeBuild())
    kept = sorted(p.name for p in images.glob("app-*.sif"))
    assert len(kept) == build.KEEP
    assert Path(build.find_image("app")).name in kept
    assert len(list(images.glob("base-os-*.sif"))) == 1
    assert len(list(images.glob("app-????????????????.json"))) == build.KEEP
