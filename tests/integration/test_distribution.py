"""Images that travel: push to the testbed's registry, submit by tag, signatures, bad input.

The registry is the testbed's own (Debian's docker-registry on 127.0.0.1, plain HTTP,
``FCG_TESTBED_REGISTRY``). Each test pushes a copy of the shared smoke image under a tag of
its own and removes the copy, so what a task runs can only come from the registry; tasks
write ``$APPTAINER_CONTAINER`` (the image Apptainer runs) into their output directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.apptainer]
Run = Callable[..., subprocess.CompletedProcess[str]]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def registry() -> str:
    """``host:port`` of the testbed's registry; skip (or fail under CI) if it does not answer."""
    address = os.environ.get("FCG_TESTBED_REGISTRY", "127.0.0.1:5000")
    try:
        urllib.request.urlopen(f"http://{address}/v2/", timeout=5).close()
    except OSError as exc:
        message = f"no OCI registry at {address} ({exc}); tests/testbed starts one"
        if os.environ.get("CI") == "true" or os.environ.get("FCG_REQUIRE_TESTBED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return address


@pytest.fixture
def space(shared_tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Its own state directory (journal) and keyring for each test."""
    monkeypatch.setenv("FCGTAINER_STATE_DIR", str(shared_tmp_path / "state"))
    monkeypatch.setenv("APPTAINER_KEYSDIR", str(shared_tmp_path / "keys"))
    return shared_tmp_path


def fcgtainer(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the fcgtainer CLI of this venv (environment inherited)."""
    exe = shutil.which("fcgtainer")
    assert exe, "fcgtainer is not installed in this environment"
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a command that must have succeeded."""
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def push_copy(smoke: Path, space: Path, ref: str, *, sign: bool = False) -> dict[str, str]:
    """Push a private copy of the smoke image to ``ref`` (signed?), then delete the copy."""
    copy = space / f"push-{uuid.uuid4().hex[:8]}.sif"
    shutil.copy(smoke, copy)
    out = ok(fcgtainer("push", *(["--sign"] if sign else []), "--no-https", str(copy), ref))
    copy.unlink()
    fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    assert fields["digest"].startswith("sha256:")
    return fields


def new_key(space: Path, name: str, keysdir: Path | None = None) -> str:
    """A passphrase-less PGP key pair in a throwaway keyring; returns its fingerprint."""
    env = {**os.environ, "APPTAINER_KEYSDIR": str(keysdir or space / "keys")}
    subprocess.run(
        ["apptainer", "key", "newpair", f"--name={name}", "--email=test@example.org",
         "--comment=fcgtainer test", "--password=", "--push=false", "--bit-length=2048"],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    listing = subprocess.run(
        ["apptainer", "key", "list"], env=env, capture_output=True, text=True, check=True
    ).stdout
    return [line.split()[-1] for line in listing.splitlines() if "Fingerprint" in line][-1]


def write_site(space: Path, scheduler: str, registry: str, extra: str = "") -> Path:
    """The testbed site, running tasks in Apptainer, staging pulls on a node without internet."""
    base = (REPO / "sites" / f"testbed-{scheduler}.yaml").read_text()
    base = base.replace("runtime: native", "runtime: apptainer")
    base = base.replace("~/fcgtainer-runs", str(space / "runs"))
    site = space / f"site-{scheduler}.yaml"
    site.write_text(
        base
        + "internet: false\n"
        + "apptainer:\n"
        + f"  plain_http_registries: ['{registry}']\n"
        + f"  pull_dir: {space / 'pulled'}\n"
        + textwrap.indent(extra, "  ")
    )
    return site


def write_job(space: Path, image: str, tasks: int = 2) -> Path:
    """A job whose tasks record which image file Apptainer runs them in."""
    job = space / "job" / "job.yaml"
    job.parent.mkdir(exist_ok=True)
    job.write_text(
        textwrap.dedent(f"""\
            name: oras-{uuid.uuid4().hex[:6]}
            image: {image}
            command: [sh, -c, 'echo "$APPTAINER_CONTAINER" > image.txt']
            matrix:
              n: {{range: [0, {tasks}]}}
            resources: {{cpus: 1, memory: 64MiB, walltime: "00:05:00"}}
            """)
    )
    return job


def manifest(space: Path) -> dict[str, object]:
    """The manifest of the one run under the test's runs directory."""
    found = list((space / "runs").glob("*/manifest.json"))
    assert len(found) == 1, found
    data = json.loads(found[0].read_text())
    assert isinstance(data, dict)
    return data


def no_run_queued(space: Path) -> None:
    """Nothing reached a scheduler: no run directory and no journaled run."""
    assert not list((space / "runs").glob("*/manifest.json"))
    journal = ok(fcgtainer("status"))
    assert "oras-" not in journal, journal


# ---------------------------------------------------------------- push, submit by tag


@pytest.mark.parametrize(
    "scheduler", [pytest.param("slurm", marks=pytest.mark.slurm),
                  pytest.param("htcondor", marks=pytest.mark.htcondor)],
)  # fmt: skip
def test_submit_by_tag_pins_the_digest_and_ignores_a_later_retag(
    scheduler: str, registry: str, smoke_image: Path, space: Path, submitted_jobs: object
) -> None:
    tag = f"oras://{registry}/fcg/smoke:{scheduler}-{uuid.uuid4().hex[:8]}"
    first = push_copy(smoke_image, space, tag)
    site = write_site(space, scheduler, registry)
    done = fcgtainer("submit", str(write_job(space, tag)), "--site", str(site))
    ok(done)
    # Re-point the tag at another image (a signed copy: other bytes) while tasks are queued.
    new_key(space, "retagger")
    second = push_copy(smoke_image, space, tag, sign=True)
    assert second["digest"] != first["digest"]
    ok(fcgtainer("status", "last", "--watch", timeout=300))

    image = manifest(space)["image"]
    assert isinstance(image, dict)
    assert image["reference"] == tag and image["digest"] == first["digest"]
    assert image["pinned"] == first["pinned"]
    pinned_file = Path(str(image["path"]))
    assert pinned_file.name == f"{first['digest'].replace(':', '-')}.sif"
    ran = {p.read_text().strip() for p in (space / "runs").glob("*/out/*/image.txt")}
    print(f"pushed {tag}: {first['digest']}; re-tagged to {second['digest']}")
    print(f"manifest image: {json.dumps(image)}\ntasks ran: {sorted(ran)}")
    assert ran == {str(pinned_file)}, f"tasks ran {ran}, the run pinned {pinned_file}"


# ---------------------------------------------------------------- signatures


@pytest.mark.slurm
def test_signed_site_runs_trusted_and_refuses_unsigned_and_untrusted(
    registry: str, smoke_image: Path, space: Path, submitted_jobs: object
) -> None:
    trusted = new_key(space, "trusted")
    site = write_site(
        space, "slurm", registry, f"require_signed: true\ntrusted_keys: [{trusted}]\n"
    )
    repo = f"oras://{registry}/fcg/signed"
    unsigned = f"{repo}:unsigned-{uuid.uuid4().hex[:8]}"
    push_copy(smoke_image, space, unsigned)
    # An untrusted key: another keyring signs (its public key is not in ours).
    other_keys = space / "other-keys"
    untrusted = new_key(space, "stranger", other_keys)
    copy = space / "stranger.sif"
    shutil.copy(smoke_image, copy)
    env = {**os.environ, "APPTAINER_KEYSDIR": str(other_keys)}
    subprocess.run(["apptainer", "sign", str(copy)], env=env, check=True, capture_output=True)
    stranger = f"{repo}:stranger-{uuid.uuid4().hex[:8]}"
    ok(fcgtainer("push", "--no-https", str(copy), stranger))

    for ref, says, key in ((unsigned, "is unsigned", trusted),
                           (stranger, "signed by untrusted key", untrusted)):  # fmt: skip
        done = fcgtainer("submit", str(write_job(space, ref)), "--site", str(site))
        assert done.returncode == 2, f"{ref}: exit {done.returncode}\n{done.stderr}"
        first_line = done.stderr.strip().splitlines()[0]
        print(f"exit {done.returncode}: {done.stderr.strip()}")
        assert ref in first_line and says in first_line, done.stderr
        assert key[-16:] in first_line, f"key {key} not named: {first_line}"  # id or fingerprint
        assert "fix:" in done.stderr
        no_run_queued(space)

    signed = f"{repo}:signed-{uuid.uuid4().hex[:8]}"
    push_copy(smoke_image, space, signed, sign=True)
    ok(fcgtainer("submit", str(write_job(space, signed, tasks=1)), "--site", str(site)))
    print(ok(fcgtainer("status", "last", "--watch", timeout=300)))
    assert (space / "pulled").is_dir()


# ---------------------------------------------------------------- bad input


def test_bad_references_fail_clearly_and_submit_nothing(
    registry: str, smoke_image: Path, space: Path
) -> None:
    tag = f"oras://{registry}/fcg/smoke:bad-{uuid.uuid4().hex[:8]}"
    pushed = push_copy(smoke_image, space, tag)
    site = write_site(space, "slurm", registry)
    other_digest = "sha256:" + "0" * 64
    cases = {
        "oras://no-such-registry.invalid/fcg/smoke:v1": "unknown registry",
        f"oras://{registry}/fcg/smoke:no-such-tag": "tag 'no-such-tag' not found",
        "oras://127.0.0.1:9/fcg/smoke:v1": "refused the connection",
        f"oras://{registry}/fcg/smoke@{other_digest}": "is not in",
        f"oras://{registry}/fcg/smoke:{tag.rsplit(':', 1)[1]}@{other_digest}": "digest mismatch",
    }
    for ref, says in cases.items():
        done = fcgtainer("submit", str(write_job(space, ref)), "--site", str(site))
        assert done.returncode in (2, 3), f"{ref}: exit {done.returncode}\n{done.stderr}"
        lines = done.stderr.strip().splitlines()
        print(f"{ref}\n  exit {done.returncode}: {done.stderr.strip()}")
        assert says in lines[0], done.stderr
        assert "Traceback" not in done.stderr
        no_run_queued(space)
    # The real digest works with the same site (it only differs from the cases above).
    out = ok(fcgtainer("pull", "--site", str(site), pushed["pinned"]))
    assert out.strip().endswith(f"{pushed['digest'].replace(':', '-')}.sif")
