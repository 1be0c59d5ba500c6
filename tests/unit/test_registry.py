"""Registry references, connection errors, signature checks and the submit hook (no network).

The registry's answers (tag, digest, mismatch, pull) are tested against the real registry
in tests/integration/test_distribution.py; here only what needs no registry at all.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from fcgtainer import proc
from fcgtainer.config.job import Job
from fcgtainer.config.site import Site, load_site
from fcgtainer.errors import ConfigError
from fcgtainer.images import registry, signing
from fcgtainer.runs import submit as runs

pytestmark = pytest.mark.unit
DIGEST = "sha256:" + "ab" * 32
FPR = "F660CC3AEF6119B6195BAB5A8A4BA67BF36171F6"
OTHER = "0123456789ABCDEF0123456789ABCDEF01234567"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("oras://127.0.0.1:5000/fcg/smoke:v1", ("127.0.0.1:5000", "fcg/smoke", "v1", None)),
        (f"oras://reg.example.org/a/b/c@{DIGEST}", ("reg.example.org", "a/b/c", None, DIGEST)),
        (f"oras://h/n:t@{DIGEST}", ("h", "n", "t", DIGEST)),
        (
            "oras://h:443/ns/my-image_1.x:2026.12-rc1",
            ("h:443", "ns/my-image_1.x", "2026.12-rc1", None),
        ),
    ],
)
def test_parse_reference(text: str, want: tuple[str, str, str | None, str | None]) -> None:
    ref = registry.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == want
    assert str(ref) == text
    assert registry.is_reference(text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("oras://h/ns/name", "no tag and no digest"),
        ("oras://h", "no registry host and repository"),
        ("docker://h/ns/name:t", "is not a registry reference"),
        ("oras://h/NS/name:t", "is not a repository name"),
        ("oras://h/ns/name@sha256:12", "is not a digest"),
        ("oras://h/ns/name:t t", "is not a tag"),
    ],
)
def test_bad_reference_is_one_clear_error(text: str, says: str) -> None:
    with pytest.raises(registry.RegistryError, match=says) as info:
        registry.parse(text)
    assert info.value.exit_code == 2 and info.value.hint


def free_port() -> int:
    """A port nothing listens on (bound, then closed): connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_registry_down_is_refused_connection() -> None:
    ref = registry.parse(f"oras://127.0.0.1:{free_port()}/fcg/smoke:v1")
    with pytest.raises(registry.RegistryDown, match="refused the connection"):
        registry.resolve(ref, plain_http=True, timeout=5)


def test_unknown_registry_host(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_host(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    ref = registry.parse("oras://registry.invalid/fcg/smoke:v1")
    with pytest.raises(registry.RegistryError, match=r"unknown registry 'registry\.invalid'"):
        registry.resolve(ref, plain_http=True, timeout=5)


def test_cache_path_is_by_digest(tmp_path: Path) -> None:
    ref = registry.parse("oras://127.0.0.1:5000/fcg/smoke:v1")
    resolved = registry.Resolved(ref, DIGEST, "sha256:" + "cd" * 32, 10)
    path = registry.cached_path(resolved, tmp_path)
    assert path == tmp_path / "127.0.0.1_5000" / "fcg" / "smoke" / f"sha256-{'ab' * 32}.sif"
    assert resolved.pinned == f"oras://127.0.0.1:5000/fcg/smoke@{DIGEST}"


def test_credentials_are_read_from_apptainers_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = base64.b64encode(b"fcg:secret").decode()
    (tmp_path / "docker-config.json").write_text(
        json.dumps({"auths": {"reg:5000": {"auth": auth}}})
    )
    monkeypatch.setenv("APPTAINER_CONFIGDIR", str(tmp_path))
    assert registry.credentials("reg:5000") == "fcg:secret"
    assert registry.credentials("other") is None


# ---------------------------------------------------------------- signatures

# `apptainer verify --json --local` of Apptainer 1.4.5 (testbed), trimmed to one partition.
SIGNED = {
    "Signatures": 1,
    "SignerKeys": [
        {
            "Signer": {
                "Partition": "FS",
                "Name": "test (testkey) <t@example.org>",
                "Fingerprint": FPR.lower(),
                "KeyLocal": True,
                "KeyCheck": True,
                "DataCheck": True,
            }
        }
    ],
}
UNSIGNED = {"Signatures": 0, "SignerKeys": None}
UNKNOWN_KEY = {"Signatures": 1, "SignerKeys": None}


def signature_packet(fingerprint: str) -> str:
    """An armored v4 OpenPGP signature whose hashed area holds an issuer fingerprint."""
    fpr = bytes.fromhex(fingerprint)
    sub = bytes([len(fpr) + 2, 33, 4]) + fpr
    body = bytes([4, 0, 1, 8]) + len(sub).to_bytes(2, "big") + sub + b"\x00\x00" + b"\x00" * 4
    packet = bytes([0xC2, len(body)]) + body
    armored = base64.b64encode(packet).decode()
    return (
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{}\n"
        f"-----BEGIN PGP SIGNATURE-----\n\n{armored}\n=abcd\n-----END PGP SIGNATURE-----\n"
    )


def test_pgp_issuer_reads_the_fingerprint_subpacket() -> None:
    assert signing.pgp_issuer(signature_packet(OTHER)) == OTHER
    assert signing.pgp_issuer("no signature here") is None


def fake_apptainer(
    monkeypatch: pytest.MonkeyPatch, verify: dict[str, Any], code: int, error: str = ""
) -> list[list[str]]:
    """Stand in for apptainer verify / sif list / sif dump; return the argv seen."""
    seen: list[list[str]] = []

    def run(argv: Sequence[str], **kwargs: Any) -> proc.Completed:
        seen.append(list(argv))
        if argv[1] == "verify":
            out, rc = json.dumps(verify, indent=2), code
        elif argv[1:3] == ["sif", "list"]:
            out, rc = "4    |NONE    |1   (G) |40960-42280    |Signature (SHA-256)\n", 0
        else:
            out, rc = signature_packet(OTHER), 0
        return proc.Completed(tuple(argv), rc, out, f"FATAL:   {error}" if error else "")

    monkeypatch.setattr(proc, "run", run)
    return seen


def strict_site(tmp_path: Path, keys: Sequence[str] = (FPR,)) -> Site:
    path = tmp_path / "strict.yaml"
    path.write_text(
        "scheduler: local\napptainer:\n  require_signed: true\n"
        f"  trusted_keys: [{', '.join(keys)}]\n"
    )
    return load_site(str(path))


def test_trusted_signature_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = fake_apptainer(monkeypatch, SIGNED, 0)
    found = signing.require_trusted(tmp_path / "img.sif", strict_site(tmp_path))
    assert found.fingerprints == (FPR,)
    assert seen[0][1:4] == ["verify", "--json", "--local"]  # never a key server


@pytest.mark.parametrize(
    ("verify", "code", "says"),
    [
        (UNSIGNED, 255, "is unsigned"),
        (SIGNED, 0, f"signed by untrusted key {FPR}"),
        (UNKNOWN_KEY, 255, f"signed by untrusted key {OTHER}"),
    ],
)
def test_refused_images_name_image_and_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    verify: dict[str, Any],
    code: int,
    says: str,
) -> None:
    fake_apptainer(monkeypatch, verify, code, "integrity: signature not valid")
    site = strict_site(tmp_path, keys=[OTHER] if verify is SIGNED else [FPR])
    with pytest.raises(signing.SignatureError, match=says) as info:
        signing.require_trusted(tmp_path / "img.sif", site, shown="oras://h/n:t")
    assert info.value.exit_code == 2
    assert "oras://h/n:t" in info.value.message and info.value.hint
    assert "\n" not in info.value.message


def test_trusted_key_missing_from_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_apptainer(monkeypatch, UNKNOWN_KEY, 255, "signature made by unknown entity")
    with pytest.raises(signing.SignatureError, match="does not verify") as info:
        signing.require_trusted(tmp_path / "img.sif", strict_site(tmp_path, keys=[OTHER]))
    assert "apptainer key import" in str(info.value.hint)


def test_require_signed_needs_trusted_keys(tmp_path: Path) -> None:
    site = Site.model_validate({"apptainer": {"require_signed": True}})
    with pytest.raises(signing.SignatureError, match="trusted_keys is empty"):
        signing.require_trusted(tmp_path / "img.sif", site)


def test_trusted_keys_must_be_fingerprints(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("apptainer: {trusted_keys: [deadbeef]}\n")
    with pytest.raises(ConfigError, match=r"apptainer\.trusted_keys"):
        load_site(str(path))
    spaced = " ".join(FPR[i : i + 4] for i in range(0, 40, 4)).lower()
    site = Site.model_validate({"apptainer": {"trusted_keys": [spaced]}})
    assert site.apptainer.trusted_keys == (FPR,)


# ---------------------------------------------------------------- submit


def test_submit_stages_a_reference_and_the_manifest_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = registry.parse("oras://127.0.0.1:5000/fcg/smoke:v1")
    resolved = registry.Resolved(ref, DIGEST, "sha256:" + "cd" * 32, 4)
    calls: list[str] = []

    def fake_pull(res: registry.Resolved, directory: Path, **kwargs: Any) -> Path:
        path = registry.cached_path(res, directory)
        path.parent.mkdir(parents=True)
        path.write_bytes(b"SIF!")
        path.with_suffix(".json").write_text(
            json.dumps({"reference": str(ref), "tag": "v1", "digest": DIGEST, "pinned": res.pinned})
        )
        return path

    def fake_resolve(r: registry.Reference, **kwargs: Any) -> registry.Resolved:
        calls.append(str(r))
        return resolved

    monkeypatch.setattr(registry, "resolve", fake_resolve)
    monkeypatch.setattr(registry, "pull", fake_pull)
    site = Site.model_validate({"apptainer": {"pull_dir": str(tmp_path / "pulled")}})
    job = Job.model_validate({"name": "j", "command": ["true"], "image": str(ref)})
    image = runs.resolve_image(job, site, None)
    assert image is not None and image.endswith(f"sha256-{'ab' * 32}.sif")
    assert calls == [str(ref)]  # resolved once
    origin = registry.origin(image)
    assert origin == {
        "reference": str(ref),
        "tag": "v1",
        "digest": DIGEST,
        "pinned": resolved.pinned,
    }


def test_site_maps_a_recipe_to_a_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    staged: list[str] = []

    def fake_stage(text: str, site: Site | None, **kw: Any) -> tuple[Path, Any]:
        staged.append(text)
        return tmp_path / "x.sif", registry.Resolved(registry.parse(text), DIGEST, DIGEST, 0)

    monkeypatch.setattr(registry, "stage", fake_stage)
    site = Site.model_validate({"apptainer": {"image_refs": {"smoke": "oras://h/fcg/smoke:v1"}}})
    job = Job.model_validate({"name": "j", "command": ["true"], "image": "smoke"})
    assert runs.resolve_image(job, site, None) == str(tmp_path / "x.sif")
    assert staged == ["oras://h/fcg/smoke:v1"]


def test_bad_reference_fails_before_any_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: Callable[[str, str], Path]
) -> None:
    made: list[object] = []
    monkeypatch.setattr(runs, "get_backend", lambda site: made.append(site))
    job = write("j/job.yaml", 'name: j\ncommand: ["true"]\nimage: oras://h/fcg/smoke\n')
    site = write("s.yaml", f"runtime: apptainer\nruns_dir: {tmp_path}/runs\n")
    with pytest.raises(registry.RegistryError, match="no tag and no digest"):
        runs.plan_run(str(job), str(site), [])
    assert made == []


def test_pull_checks_the_layer_digest_and_reuses_an_intact_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    payload = b"the SIF bytes"
    pulls: list[list[str]] = []

    def fake_run(argv: Sequence[str], **kwargs: Any) -> proc.Completed:
        pulls.append(list(argv))
        Path(argv[-2]).write_bytes(payload)
        return proc.Completed(tuple(argv), 0, "", "")

    monkeypatch.setattr(proc, "run", fake_run)
    ref = registry.parse("oras://127.0.0.1:5000/fcg/smoke:v1")
    good = registry.Resolved(ref, DIGEST, "sha256:" + hashlib.sha256(payload).hexdigest(), 13)
    path = registry.pull(good, tmp_path, plain_http=True)
    assert pulls[0][:4] == ["apptainer", "pull", "--force", "--no-https"]
    assert pulls[0][-1] == f"oras://127.0.0.1:5000/fcg/smoke@{DIGEST}"
    assert registry.pull(good, tmp_path) == path and len(pulls) == 1  # cached
    path.write_bytes(b"altered!")
    registry.pull(good, tmp_path)
    assert len(pulls) == 2 and path.read_bytes() == payload  # pulled again

    bad = registry.Resolved(ref, "sha256:" + "ef" * 32, "sha256:" + "00" * 32, 13)
    with pytest.raises(registry.RegistryError, match="digest mismatch"):
        registry.pull(bad, tmp_path)
    assert not registry.cached_path(bad, tmp_path).exists()
