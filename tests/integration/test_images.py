"""Images for real: build, cache, provenance, the task's container, CVMFS fallback, shell.

The standalone Debian image (TensorFlow, SQLamarr, pythia8mc: minutes to build) is built
once into the test image cache (``FCG_TEST_IMAGE_CACHE``, kept between runs) and reused by
content hash. run-integration runs the tests marked ``fuse`` again with /dev/fuse closed:
the image is then unpacked once per node, and the image-mode test checks that decision.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fcgtainer import node
from fcgtainer.config.job import Job
from fcgtainer.config.site import Site
from fcgtainer.host.buildargs import BUILD_ARGS
from fcgtainer.images import build, recipe
from fcgtainer.plan import container
from fcgtainer.plan.tasks import Plan, make_plan, task_spec
from fcgtainer.runs.rundir import write_secret_env

pytestmark = [pytest.mark.integration, pytest.mark.apptainer]
Run = Callable[..., subprocess.CompletedProcess[str]]
REPO = Path(__file__).resolve().parents[2]
RECIPE = "standalone-debian"
FAKE_CVMFSEXEC = REPO / "tests" / "data" / "fake-cvmfsexec"
IMAGE_PYTHON = "3.11."


def image_cache_dir() -> Path:
    """The persistent test image cache (the same place conftest.image_cache_dir uses)."""
    default = Path.home() / ".cache" / "fcgtainer-tests" / "images"
    path = Path(os.environ.get("FCG_TEST_IMAGE_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(autouse=True)
def shared_images(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test builds into and finds images in the persistent test image cache."""
    directory = image_cache_dir()
    monkeypatch.setenv("FCGTAINER_IMAGES_DIR", str(directory))
    return directory


def fcgtainer(*args: str, env: dict[str, str] | None = None, timeout: float = 600,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run the fcgtainer CLI of this venv."""
    exe = shutil.which("fcgtainer")
    assert exe, "fcgtainer is not installed in this environment"
    full = {**os.environ, "COLUMNS": "250", **(env or {})}
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout,
                          env=full, cwd=cwd, check=False)  # fmt: skip


@pytest.fixture(scope="session")
def standalone() -> Path:
    """The standalone Debian image, built (or found by content hash) once per session."""
    os.environ["FCGTAINER_IMAGES_DIR"] = str(image_cache_dir())
    start = time.monotonic()
    done = fcgtainer("build", RECIPE, timeout=3600)
    assert done.returncode == 0, f"fcgtainer build {RECIPE} failed:\n{done.stdout}\n{done.stderr}"
    print(f"fcgtainer build {RECIPE}: {time.monotonic() - start:.1f} s\n{done.stdout}")
    return Path(build.find_image(RECIPE))


# ---------------------------------------------------------------- build, cache, provenance


def test_image_has_labels_and_provenance(standalone: Path, run_command: Run) -> None:
    meta = json.loads(standalone.with_suffix(".json").read_text())
    for key in ("recipe_hash", "base", "git_commit", "build_host", "apptainer_version",
                "build_time", "sha256"):  # fmt: skip
        assert meta.get(key), f"provenance lacks {key}"
    assert meta["recipe"] == RECIPE and meta["base"]["ref"] == "recipe:base/standalone-debian"
    assert meta["recipe_hash"] == recipe.load(RECIPE, BUILD_ARGS).digest
    labels = run_command(["apptainer", "inspect", "--labels", str(standalone)]).stdout
    assert f"org.fcgtainer.recipe_hash: {meta['recipe_hash']}" in labels
    assert "org.fcgtainer.apptainer_version: apptainer version" in labels
    assert "org.fcgtainer.flavour: standalone" in labels  # from the base layer
    listed = fcgtainer("images")
    assert listed.returncode == 0 and RECIPE in listed.stdout and standalone.name in listed.stdout


def test_second_build_is_cached_without_apptainer(standalone: Path, tmp_path: Path) -> None:
    trap = tmp_path / "bin"
    trap.mkdir()
    calls = tmp_path / "apptainer-calls"
    (trap / "apptainer").write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 99\n')
    (trap / "apptainer").chmod(0o755)
    start = time.monotonic()
    done = fcgtainer("build", RECIPE, env={"PATH": f"{trap}:{os.environ['PATH']}"})
    elapsed = time.monotonic() - start
    print(f"second `fcgtainer build {RECIPE}` (nothing changed): {elapsed:.2f} s")
    assert done.returncode == 0, done.stderr
    assert not calls.exists(), "a cached build must not call apptainer"
    assert "cached" in done.stdout and "built" not in done.stdout


def test_payload_change_rebuilds_only_the_payload_layer(
    standalone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipes = tmp_path / "recipes"
    (recipes / "base").mkdir(parents=True)
    shutil.copy(REPO / "recipes" / "base" / f"{RECIPE}.def", recipes / "base")
    payload = tmp_path / "payload"
    payload.mkdir()
    token = uuid.uuid4().hex  # a fresh payload: no earlier run's cached layer can match it
    (payload / "code.py").write_text(f"VALUE = 1  # {token}\n")
    (recipes / "thin.def").write_text(
        f"Bootstrap: localimage\nFrom: base/{RECIPE}.sif\n\n%files\n    {payload} /opt/payload\n"
    )
    monkeypatch.setenv("FCGTAINER_RECIPES", str(recipes))
    first = build.build("thin")
    assert [layer.built for layer in first] == [False, first[1].built]  # base: cached
    (payload / "code.py").write_text(f"VALUE = 2  # {token}\n")
    start = time.monotonic()
    second = build.build("thin")
    elapsed = time.monotonic() - start
    base_seconds = float(second[0].provenance.get("build_seconds", 0))
    print(f"payload-only rebuild: {elapsed:.1f} s; base build took {base_seconds:.1f} s")
    assert [layer.built for layer in second] == [False, True]
    assert second[0].image == first[0].image and second[1].image != first[1].image
    out = subprocess.run(["apptainer", "exec", *([] if fuse_open() else ["--unsquash"]),
                          str(second[1].image), "cat", "/opt/payload/code.py"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stdout == f"VALUE = 2  # {token}\n"


def fuse_open() -> bool:
    return os.access("/dev/fuse", os.R_OK | os.W_OK)


@pytest.fixture(scope="session")
def node_scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One node-local scratch for the session: without FUSE the image is unpacked there
    once and every later task reuses it, as on a real node."""
    path = tmp_path_factory.mktemp("node-scratch")
    yield path
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- the task's container


def plan_for(image: Path, tmp_path: Path, command: list[str], *, site: dict[str, object]
             | None = None, job: dict[str, object] | None = None) -> Plan:  # fmt: skip
    """A one-task apptainer plan on a local site whose runs are under tmp_path and whose
    scratch is ``tmp_path/scratch`` (a symlink to the session's node scratch)."""
    job_dir = tmp_path / "job"
    job_dir.mkdir(exist_ok=True)
    data: dict[str, object] = {
        "runs_dir": str(tmp_path / "runs"),
        "scratch": str((tmp_path / "scratch").resolve()),
        "runtime": "apptainer",
        "env": {"allow": ["LANG"], "set": {"FOO": "bar"}},
    }
    data.update(site or {})
    the_job = Job.model_validate({"name": "t", "command": command, **(job or {})})
    plan = make_plan(the_job.model_copy(update={"job_dir": str(job_dir)}), Site.model_validate(data),
                     {}, "feedc0de-0000", runtime="apptainer", image=str(image),
                     payload="checkout")  # fmt: skip
    plan.task_dir(0).mkdir(parents=True)
    plan.out_dir(0).mkdir(parents=True)
    node.install(plan.run_dir)  # the launcher and its checks, as write_run_dir does
    (plan.task_dir(0) / "spec.json").write_text(json.dumps(task_spec(plan, plan.tasks[0])))
    return plan


def run_task(plan: Plan, extra_env: dict[str, str] | None = None,
             path_prefix: str = "") -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run task 0's argv as the job wrapper does, with a secret in the environment."""
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": "s3cr3t", **(extra_env or {})}
    env["PATH"] = path_prefix + env["PATH"]
    host = {"HOME": os.environ["HOME"], "LANG": "C.UTF-8", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}
    write_secret_env(plan, host)
    argv = container.task_argv(plan, plan.tasks[0], host)
    return subprocess.run(argv, cwd=plan.out_dir(0), env=env, capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip


PROBE = """
import json, os, sys
spec = json.load(open(os.environ["FCGTAINER_SPEC"]))
home_secret = os.path.exists(sys.argv[1])
scratch = os.environ["FCGTAINER_SCRATCH"]
open(os.path.join(scratch, "written-by-task"), "w").write("x")
open(os.path.join(spec["out_dir"], "out.txt"), "w").write("ok")
print(json.dumps({"env": dict(os.environ), "python": sys.version.split()[0],
                  "cwd": os.getcwd(), "home_secret": home_secret}))
"""


@pytest.mark.fuse
def test_task_sees_only_allow_list_binds_and_scratch(standalone: Path, tmp_path: Path) -> None:
    secret_file = Path.home() / ".fcgtainer-secret"
    secret_file.write_text("do not read")
    try:
        (tmp_path / "job").mkdir()
        (tmp_path / "job" / "probe.py").write_text(PROBE)
        plan = plan_for(standalone, tmp_path, ["python3", "{job_dir}/probe.py", str(secret_file)])
        done = run_task(plan)
    finally:
        secret_file.unlink()
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    env = seen["env"]
    assert "s3cr3t" not in json.dumps(env) and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["FOO"] == "bar" and env["LANG"] == "C.UTF-8"
    scratch = (tmp_path / "scratch").resolve()
    assert env["FCGTAINER_TASK"] == "0" and env["FCGTAINER_SCRATCH"] == str(scratch)
    assert seen["python"].startswith(IMAGE_PYTHON), "ran in the image"
    assert seen["cwd"] == str(plan.out_dir(0))
    assert not seen["home_secret"], "--containall: the submitter's home is not there"
    assert (plan.out_dir(0) / "out.txt").read_text() == "ok"
    assert (scratch / "written-by-task").exists()
    work = list(scratch.glob("fcgtainer-*/work.*"))
    assert work == [], "the --containall workdir is removed after the task"


@pytest.mark.fuse
def test_image_mode_follows_fuse(standalone: Path, tmp_path: Path) -> None:
    plan = plan_for(standalone, tmp_path, ["true"])
    starts = []
    for _ in range(2):
        t = time.monotonic()
        done = run_task(plan)
        starts.append(time.monotonic() - t)
        assert done.returncode == 0, done.stderr
    unpacked = list((tmp_path / "scratch").glob("fcgtainer-*/images/*.complete"))
    print(f"FUSE {'open' if fuse_open() else 'closed'}: task starts {starts}")
    if fuse_open():
        assert unpacked == [] and "unpacking" not in done.stderr
    else:
        assert len(unpacked) == 1, "unpacked once per node"
        assert "unpacking" not in done.stderr, "the second task reuses the unpacked image"


def test_gpu_task_without_gpu_exits_86(standalone: Path, tmp_path: Path) -> None:
    plan = plan_for(standalone, tmp_path, ["true"], job={"resources": {"gpus": 1}})
    done = run_task(plan)
    assert done.returncode == 86, done.stderr
    assert "GPU(s) requested but none is visible" in done.stderr


# ---------------------------------------------------------------- CVMFS fallback


@pytest.fixture
def fake_cvmfs(tmp_path: Path) -> Path:
    """A fake cvmfsexec serving sft.cern.ch from a local directory."""
    home = tmp_path / "cvmfsexec"
    (home / "cvmfs-root" / "sft.cern.ch" / "lcg").mkdir(parents=True)
    (home / "cvmfs-root" / "sft.cern.ch" / "lcg" / "marker").write_text("from-cvmfs\n")
    shutil.copy(FAKE_CVMFSEXEC, home / "cvmfsexec")
    return home / "cvmfsexec"


def cvmfs_site(exe: str, mode: str = "cvmfsexec") -> dict[str, object]:
    return {"cvmfs": {"repositories": {"sft.cern.ch": mode}, "cvmfsexec": {"path": exe},
                      "probe_timeout": 2}}  # fmt: skip


MARKER = ["cat", "/cvmfs/sft.cern.ch/lcg/marker"]


@pytest.mark.fuse
def test_cvmfs_absent_uses_cvmfsexec(standalone: Path, tmp_path: Path, fake_cvmfs: Path) -> None:
    assert not Path("/cvmfs/sft.cern.ch").exists()
    plan = plan_for(standalone, tmp_path, MARKER, site=cvmfs_site(str(fake_cvmfs)),
                    job={"cvmfs": ["sft.cern.ch"]})  # fmt: skip
    done = run_task(plan)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "from-cvmfs\n"


def test_cvmfs_on_the_host_is_bound(standalone: Path, tmp_path: Path, fake_cvmfs: Path) -> None:
    plan = plan_for(standalone, tmp_path, MARKER, site=cvmfs_site("/nonexistent/cvmfsexec", "host"),
                    job={"cvmfs": ["sft.cern.ch"]})  # fmt: skip
    write_secret_env(plan, {"HOME": os.environ["HOME"]})
    argv = container.task_argv(plan, plan.tasks[0], {"HOME": os.environ["HOME"]})
    # the whole task runs where the "host" has /cvmfs/sft.cern.ch (inside the fake)
    done = subprocess.run([str(fake_cvmfs), "sft.cern.ch", "--", *argv], cwd=plan.out_dir(0),
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "from-cvmfs\n"


def test_cvmfsexec_failing_smoke_test_exits_87(
    standalone: Path, tmp_path: Path, fake_cvmfs: Path
) -> None:
    shutil.rmtree(fake_cvmfs.parent / "cvmfs-root" / "sft.cern.ch")
    plan = plan_for(standalone, tmp_path, MARKER, site=cvmfs_site(str(fake_cvmfs)),
                    job={"cvmfs": ["sft.cern.ch"]})  # fmt: skip
    done = run_task(plan)
    assert done.returncode == 87
    assert "smoke test" in done.stderr and "Failed to mount sft.cern.ch" in done.stderr


@pytest.fixture
def hanging_ls(tmp_path: Path) -> str:
    hang = tmp_path / "hang"
    hang.mkdir()
    (hang / "ls").write_text("#!/bin/sh\nexec sleep 600\n")
    (hang / "ls").chmod(0o755)
    return f"{hang}:"


def test_hung_cvmfs_probe_times_out(standalone: Path, tmp_path: Path, hanging_ls: str) -> None:
    plan = plan_for(standalone, tmp_path, MARKER, site=cvmfs_site("/nonexistent", "host"),
                    job={"cvmfs": ["sft.cern.ch"]})  # fmt: skip
    start = time.monotonic()
    done = run_task(plan, path_prefix=hanging_ls)
    assert done.returncode == 87 and "did not answer within 2 s" in done.stderr
    assert time.monotonic() - start < 60


def test_doctor_reports_a_hung_probe(tmp_path: Path, hanging_ls: str) -> None:
    site = tmp_path / "hung.yaml"
    site.write_text("cvmfs: {repositories: {sft.cern.ch: host}, probe_timeout: 1}\n")
    start = time.monotonic()
    done = fcgtainer("doctor", "--site", str(site),
                     env={"PATH": hanging_ls + os.environ["PATH"]})  # fmt: skip
    assert time.monotonic() - start < 60
    assert "hung automount" in done.stdout
    assert "1.4" in done.stdout and "apptainer" in done.stdout


# ---------------------------------------------------------------- shell and submit


@pytest.mark.fuse
def test_shell_has_the_task_environment(standalone: Path, tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    scratch = (tmp_path / "scratch").resolve()
    site.write_text(
        f"runtime: apptainer\nruns_dir: {tmp_path}/runs\nscratch: {scratch}\n"
        "env: {allow: [LANG], set: {FOO: bar}}\n"
    )
    script = 'printf "%s|%s|%s\\n" "$FOO" "${AWS_SECRET_ACCESS_KEY-unset}" "$FCGTAINER_SCRATCH"'
    done = fcgtainer("shell", "--site", str(site), "--image", str(standalone), "--",
                     "sh", "-c", script, env={"AWS_SECRET_ACCESS_KEY": "s3cr3t"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"bar|unset|{scratch}"
    interactive = subprocess.run(
        [shutil.which("fcgtainer") or "fcgtainer", "shell", "--site", str(site), "--image",
         str(standalone)],
        input="python3 --version\nprintenv FOO\nexit\n", capture_output=True, text=True,
        timeout=300, check=False, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert interactive.returncode == 0, interactive.stderr
    assert "Python 3.11." in interactive.stdout and "bar" in interactive.stdout


def test_submit_records_the_image_in_the_manifest(standalone: Path, tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    scratch = (tmp_path / "scratch").resolve()
    site.write_text(f"runtime: apptainer\nruns_dir: {tmp_path}/runs\nscratch: {scratch}\n")
    done = fcgtainer("submit", str(REPO / "jobs" / "hello"), "--site", str(site), "--image",
                     str(standalone), "--set", "n=0", "--wait", timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads(next((tmp_path / "runs").glob("*/manifest.json")).read_text())
    assert manifest["image"]["path"] == str(standalone)
    assert (
        manifest["image"]["sha256"]
        == json.loads(standalone.with_suffix(".json").read_text())["sha256"]
    )


@pytest.fixture(autouse=True)
def _scratch(tmp_path: Path, node_scratch: Path) -> Iterator[None]:
    """``tmp_path/scratch`` is the node scratch; no task may leave a workdir behind."""
    (tmp_path / "scratch").symlink_to(node_scratch)
    yield
    assert not list(node_scratch.glob("fcgtainer-*/work.*"))
