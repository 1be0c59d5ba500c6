"""Static checks of the recipes that cannot be built here (no CentOS, EL9 or NVIDIA repos).

Each definition is parsed by spython, every script section passes ``bash -n``, the CentOS 7
repositories end up on vault.centos.org, cvmfsexec is made with the ``default`` dist, and
no recipe names a package registry host of its own (the Debian mirror comes from the host).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from spython.main.parse.parsers.singularity import SingularityParser

from fcgtainer.host.buildargs import BUILD_ARGS
from fcgtainer.images import recipe

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
ALL = sorted(recipe.available())
CVMFS_CUDA = ["centos7-cvmfs-cuda", "el9-cvmfs-cuda"]
SCRIPT_SECTIONS = ("setup", "post", "runscript", "startscript", "test", "environment")

# The stock CentOS 7 CentOS-Base.repo (abridged: the shape of every section).
CENTOS_BASE_REPO = """\
[base]
name=CentOS-$releasever - Base
mirrorlist=http://mirrorlist.centos.org/?release=$releasever&arch=$basearch&repo=os&infra=$infra
#baseurl=http://mirror.centos.org/centos/$releasever/os/$basearch/
gpgcheck=1

[updates]
name=CentOS-$releasever - Updates
mirrorlist=http://mirrorlist.centos.org/?release=$releasever&arch=$basearch&repo=updates&infra=$infra
#baseurl=http://mirror.centos.org/centos/$releasever/updates/$basearch/
gpgcheck=1

[extras]
name=CentOS-$releasever - Extras
mirrorlist=http://mirrorlist.centos.org/?release=$releasever&arch=$basearch&repo=extras&infra=$infra
#baseurl=http://mirror.centos.org/centos/$releasever/extras/$basearch/
gpgcheck=1
"""


class AnyBootstrap(SingularityParser):  # type: ignore[misc]
    """spython's parser without its docker-only check (localimage, debootstrap are fine)."""

    def _check_bootstrap(self, line: str) -> None:
        return None


def fake_args() -> dict[str, object]:
    return {
        "debian_mirror": lambda: "http://mirror.invalid/debian",
        "ca_bundle": lambda: str(REPO / "pyproject.toml"),
        "node": BUILD_ARGS["node"],
    }


def chain(name: str) -> list[recipe.Recipe]:
    return recipe.load(name, fake_args()).chain()  # type: ignore[arg-type]


def test_the_recipes_are_there() -> None:
    for name in ("centos7-cvmfs-cuda", "el9-cvmfs-cuda", "standalone", "standalone-debian"):
        assert name in ALL
        assert [r.name for r in chain(name)][-1] == name
    assert recipe.available()["centos7-cvmfs-cuda"] == REPO / "Apptainer.def"


@pytest.mark.parametrize("name", ALL)
def test_spython_parses(name: str, tmp_path: Path) -> None:
    loaded = recipe.load(name, fake_args())  # type: ignore[arg-type]
    composed = tmp_path / "recipe.def"
    composed.write_text(loaded.text)  # build arguments filled in
    layer = next(iter(AnyBootstrap(str(composed)).recipe.values()))
    header = loaded.header
    assert header["bootstrap"] in ("docker", "localimage", "debootstrap")
    if header["bootstrap"] == "debootstrap":
        assert header["osversion"] and header["mirrorurl"]
    else:
        assert layer.fromHeader, f"{loaded.path}: no From"
    assert [tuple(pair.split()) for pair in layer.files] == [
        (src, dest) for src, dest in recipe.files_of(loaded.text)
    ]


@pytest.mark.parametrize("name", ALL)
def test_every_section_is_valid_bash(name: str) -> None:
    text = recipe.available()[name].read_text()
    for section, lines in recipe.sections(text).items():
        if section not in SCRIPT_SECTIONS:
            continue
        body = "\n".join(lines)
        done = subprocess.run(["bash", "-n"], input=body, capture_output=True, text=True)
        assert done.returncode == 0, f"{name} %{section}: {done.stderr}"


def test_payload_layers_are_thin() -> None:
    for name in ("centos7-cvmfs-cuda", "el9-cvmfs-cuda", "standalone", "standalone-debian"):
        top = chain(name)[-1]
        assert top.header["bootstrap"] == "localimage"
        assert "post" not in recipe.sections(top.text), "no package installs in a payload layer"
        dests = [dest for _src, dest in top.files]
        assert "/opt/fcgtainer/jobs" in dests and "/opt/fcgtainer/node" in dests
        assert "/opt/fcgtainer/node/run.sh" in "\n".join(recipe.sections(top.text)["runscript"])


def test_centos7_repositories_point_at_the_vault(tmp_path: Path) -> None:
    base = chain("centos7-cvmfs-cuda")[0]
    assert base.header["from"].startswith("centos:7")
    post = "\n".join(recipe.sections(base.text)["post"])
    # run the recipe's own sed command on a stock CentOS-Base.repo
    sed = re.search(r"^\s*(sed -i .*?CentOS-\*\.repo)$", post, re.S | re.M)
    assert sed, "the %post rewrites the yum repositories with sed"
    repo = tmp_path / "CentOS-Base.repo"
    repo.write_text(CENTOS_BASE_REPO)
    command = sed.group(1).replace("/etc/yum.repos.d/CentOS-*.repo", str(repo))
    subprocess.run(["bash", "-c", command], check=True)
    rewritten = repo.read_text()
    active = [line for line in rewritten.splitlines() if not line.startswith("#")]
    assert not [line for line in active if line.startswith("mirrorlist=")]
    baseurls = [line for line in active if line.startswith("baseurl=")]
    assert len(baseurls) == 3
    assert all(url.startswith("baseurl=https://vault.centos.org/7.9.2009/") for url in baseurls)
    assert "baseurl=https://vault.centos.org/7.9.2009/os/$basearch/" in baseurls


@pytest.mark.parametrize("name", CVMFS_CUDA)
def test_cvmfsexec_uses_the_default_dist(name: str) -> None:
    base = chain(name)[0]
    post = "\n".join(recipe.sections(base.text)["post"])
    dists = re.findall(r"makedist\s+(?:-\S+\s+)*(\w+)", post)
    assert dists == ["default"], "cvmfsexec >= 4.48 has no el7 osg/egi dist"
    assert "fuse" in post and "cuda-cudart" in post
    assert re.search(r"\bgit clone\b.*cvmfs/cvmfsexec", post)


def test_el9_base_is_el9() -> None:
    assert chain("el9-cvmfs-cuda")[0].header["from"] == "almalinux:9"
    assert chain("standalone")[0].header["from"] == "almalinux:9"


def test_debian_mirror_comes_from_the_host() -> None:
    path = recipe.available()["base/standalone-debian"]
    raw = path.read_text()
    assert recipe.header(raw)["mirrorurl"] == "{{ debian_mirror }}"
    assert "{{ ca_bundle }}" in raw and "PIP_CERT" in raw
    base = chain("standalone-debian")[0]
    assert base.header["mirrorurl"] == "http://mirror.invalid/debian"


def test_no_registry_host_is_hard_coded() -> None:
    # mirror.centos.org: only as the pattern the CentOS 7 recipe rewrites to the vault
    allowed = {"vault.centos.org", "mirror.centos.org", "developer.download.nvidia.com"}
    allowed.add("github.com")
    for path in [REPO / "Apptainer.def", *sorted((REPO / "recipes").rglob("*"))]:
        if path.is_dir():
            continue
        hosts = set(re.findall(r"https?://([A-Za-z0-9.-]+)", path.read_text()))
        assert hosts <= allowed, f"{path}: {hosts - allowed}"


def test_requirements_are_pinned_where_it_matters() -> None:
    reqs = REPO / "recipes" / "requirements"
    assert "tensorflow-cpu==2.21.0" in (reqs / "fastcalogan.txt").read_text()
    lamarr = (reqs / "lamarr.txt").read_text()
    assert "SQLamarr==0.0rc7" in lamarr and "pythia8mc" in lamarr and "scikinc" in lamarr
    both = (reqs / "standalone.txt").read_text()
    assert "-r fastcalogan.txt" in both and "-r lamarr.txt" in both


def test_runscript_ships_with_its_library() -> None:
    top = chain("standalone-debian")[-1]
    shipped = dict((dest, src) for src, dest in top.files)["/opt/fcgtainer/node"]
    assert {"run.sh", "lib.sh", "codes.sh"} <= {p.name for p in shipped.iterdir()}
    assert (shipped / "run.sh").stat().st_mode & 0o111
