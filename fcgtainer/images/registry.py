"""Images in OCI registries: references, tag -> digest, push, and pulls into a site cache.

Apptainer moves SIF files through OCI registries with its ``oras://`` transport
(``apptainer push`` / ``apptainer pull``); a login (``apptainer registry login``) lives in
Apptainer's own credential store, which fcgtainer only reads. A reference names an image as
``oras://host[:port]/namespace/name:tag`` or ``...@sha256:<64 hex>``.

``submit`` resolves a tag to its manifest digest once (the registry's HTTP API v2), pulls
that digest to the site's pull cache on the login node and gives every task the cached file:
re-pointing the tag later changes nothing for a run already planned. The manifest digest is
checked against the manifest's bytes and the pulled file against the manifest's SIF layer
digest, so a task runs exactly the bytes that were pushed.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from email.message import Message
from pathlib import Path
from typing import Any

from fcgtainer import proc
from fcgtainer.config.site import Site
from fcgtainer.errors import CommandError, ConfigError, NotFoundError, PreflightError

SCHEME = "oras://"
# The layer media type `apptainer push oras://` gives the SIF file.
SIF_LAYER = "application/vnd.sylabs.sif.layer.v1.sif"
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
# Grammar of the OCI distribution spec (name components, tags) and of a sha256 digest.
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?")
_NAME = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
TIMEOUT = 30.0


class RegistryError(ConfigError):
    """A reference or a registry answer that cannot be used (bad input: exit 2)."""


class RegistryDown(PreflightError):
    """The registry does not answer (refused connection, timeout)."""


@dataclass(frozen=True)
class Reference:
    """An ``oras://`` image reference: registry, repository and a tag and/or a digest."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        text = f"{SCHEME}{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def by_digest(self, digest: str) -> str:
        """This image pinned to ``digest`` (what ``apptainer pull`` is given)."""
        return f"{SCHEME}{self.registry}/{self.repository}@{digest}"


@dataclass(frozen=True)
class Resolved:
    """A reference resolved against its registry."""

    reference: Reference
    digest: str  # of the manifest: what the image is pinned to
    layer_digest: str  # of the SIF file itself
    size: int

    @property
    def pinned(self) -> str:
        """``oras://host/name@sha256:...``."""
        return self.reference.by_digest(self.digest)


def is_reference(text: str) -> bool:
    """True when ``text`` names an image in a registry (``oras://...``)."""
    return text.startswith(SCHEME)


def parse(text: str) -> Reference:
    """Parse ``oras://host/ns/name:tag`` or ``...@sha256:<hex>``; one clear error if not."""
    if not is_reference(text):
        raise RegistryError(
            f"{text!r} is not a registry reference",
            "write oras://host[:port]/namespace/name:tag (or @sha256:<digest>)",
        )
    registry, _, path = text.removeprefix(SCHEME).partition("/")
    if not _HOST.fullmatch(registry) or not path:
        raise RegistryError(
            f"{text}: no registry host and repository",
            "write oras://host[:port]/namespace/name:tag",
        )
    path, _, digest = path.partition("@")
    name, tag = path, None
    if ":" in path.rsplit("/", 1)[-1]:
        name, _, tag = path.rpartition(":")
    if not _NAME.fullmatch(name):
        raise RegistryError(
            f"{text}: {name!r} is not a repository name",
            "lower-case letters, digits and . _ - separated by /",
        )
    if tag is not None and not _TAG.fullmatch(tag):
        raise RegistryError(f"{text}: {tag!r} is not a tag", "letters, digits, . _ -")
    if digest and not _DIGEST.fullmatch(digest):
        raise RegistryError(
            f"{text}: {digest!r} is not a digest", "write @sha256: and 64 lower-case hex digits"
        )
    if tag is None and not digest:
        raise RegistryError(
            f"{text}: no tag and no digest",
            f"name the image exactly: {text}:TAG or {text}@sha256:DIGEST",
        )
    return Reference(registry, name, tag, digest or None)


# --- the registry's HTTP API v2 -----------------------------------------------------------


def resolve(ref: Reference, *, plain_http: bool = False, timeout: float = TIMEOUT) -> Resolved:
    """Ask the registry for the manifest of ``ref``: its digest and the SIF layer's.

    Raises
    ------
    RegistryError
        Unknown registry host, unknown repository, tag or digest, a manifest whose bytes do
        not match its digest, or a manifest that holds no SIF.
    RegistryDown
        The registry refused the connection or did not answer.
    """
    if ref.tag and ref.digest:  # both given: the tag must still name that digest
        tagged = resolve(Reference(ref.registry, ref.repository, ref.tag), plain_http=plain_http)
        if tagged.digest != ref.digest:
            raise RegistryError(
                f"{ref}: digest mismatch: tag {ref.tag!r} now names {tagged.digest}",
                "use the digest alone to run the older image, or the tag alone for the new one",
            )
        return replace(tagged, reference=ref)
    target = ref.digest or ref.tag
    assert target is not None
    status, body, headers = _get(
        ref, f"/v2/{ref.repository}/manifests/{target}", plain_http, timeout
    )
    if status == 404:
        raise _not_found(ref, body, plain_http, timeout)
    if status != 200:
        raise RegistryError(
            f"{ref}: registry answered HTTP {status}: {_registry_message(body)}",
            "check the reference; `apptainer registry login` if the registry needs a login",
        )
    actual = "sha256:" + hashlib.sha256(body).hexdigest()
    claimed = headers.get("Docker-Content-Digest")
    for expected, what in ((ref.digest, "the reference"), (claimed, "the registry")):
        if expected and expected != actual:
            raise RegistryError(
                f"{ref}: digest mismatch: {what} says {expected}, the manifest is {actual}",
                "the registry returned other content than asked for; do not use it, "
                "check the reference and the registry",
            )
    try:
        manifest = json.loads(body)
        layers = [x for x in manifest.get("layers", []) if x.get("mediaType") == SIF_LAYER]
    except (ValueError, AttributeError):
        layers = []
    if len(layers) != 1 or not _DIGEST.fullmatch(str(layers[0].get("digest", ""))):
        raise RegistryError(
            f"{ref}: not a SIF image (no {SIF_LAYER} layer)",
            "push SIF images with `fcgtainer push` (apptainer push oras://...)",
        )
    return Resolved(ref, actual, str(layers[0]["digest"]), int(layers[0].get("size", 0)))


def tags(ref: Reference, *, plain_http: bool = False, timeout: float = TIMEOUT) -> list[str]:
    """The tags of ``ref``'s repository (empty if the registry will not say)."""
    try:
        status, body, _ = _get(ref, f"/v2/{ref.repository}/tags/list", plain_http, timeout)
        found = json.loads(body).get("tags") if status == 200 else None
    except (RegistryError, RegistryDown, ValueError, AttributeError):
        return []
    return sorted(str(t) for t in found or [])


def _not_found(ref: Reference, body: bytes, plain_http: bool, timeout: float) -> RegistryError:
    codes = {str(e.get("code")) for e in _registry_errors(body)}
    if "NAME_UNKNOWN" in codes:
        return RegistryError(
            f"{ref}: no repository {ref.repository} in registry {ref.registry}",
            "check the name, or push the image there first with `fcgtainer push`",
        )
    if "MANIFEST_UNKNOWN" in codes or codes:
        if ref.digest:
            return RegistryError(
                f"{ref}: digest {ref.digest} is not in {ref.registry}/{ref.repository} "
                "(no manifest has that digest)",
                "check the digest: `pushed` in the image's provenance JSON lists what was pushed",
            )
        known = tags(ref, plain_http=plain_http, timeout=timeout)
        return RegistryError(
            f"{ref}: tag {ref.tag!r} not found in {ref.registry}/{ref.repository}",
            f"tags there: {', '.join(known)}" if known else "push the image with that tag first",
        )
    return RegistryError(
        f"{ref}: {ref.registry} does not serve the OCI registry API (HTTP 404)",
        "check the registry host and port",
    )


def _registry_errors(body: bytes) -> list[dict[str, Any]]:
    try:
        errors = json.loads(body).get("errors")
    except (ValueError, AttributeError):
        return []
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _registry_message(body: bytes) -> str:
    errors = _registry_errors(body)
    if errors:
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
    return body[:200].decode(errors="replace").strip() or "(no body)"


def _get(ref: Reference, path: str, plain_http: bool, timeout: float) -> tuple[int, bytes, Message]:
    """GET ``path`` from the registry, logging in with Apptainer's stored credentials."""
    url = f"{'http' if plain_http else 'https'}://{ref.registry}{path}"
    headers = {"Accept": ", ".join(MANIFEST_TYPES)}
    status, body, answer = _request(url, headers, ref, plain_http, timeout)
    if status == 401:
        auth = _authorization(answer.get("WWW-Authenticate", ""), ref, plain_http, timeout)
        if auth:
            status, body, answer = _request(
                url, {**headers, "Authorization": auth}, ref, plain_http, timeout
            )
    if status == 401:
        raise RegistryError(
            f"{ref}: the registry asks for a login",
            f"run `apptainer registry login --username USER {SCHEME}{ref.registry}`",
        )
    return status, body, answer


def _request(
    url: str, headers: Mapping[str, str], ref: Reference, plain_http: bool, timeout: float
) -> tuple[int, bytes, Message]:
    host = urllib.parse.urlsplit(url).hostname or ""
    # Like Apptainer (Go's ProxyFromEnvironment): a registry on loopback is never proxied.
    handlers = [urllib.request.ProxyHandler({})] if _loopback(host) else []
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers=dict(headers))
    try:
        with opener.open(request, timeout=timeout) as answer:
            return answer.status, answer.read(), answer.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers
    except urllib.error.URLError as exc:
        raise _connection_error(ref, exc.reason, plain_http) from None
    except (TimeoutError, ConnectionError) as exc:
        raise _connection_error(ref, exc, plain_http) from None


def _connection_error(
    ref: Reference, reason: object, plain_http: bool
) -> RegistryError | RegistryDown:
    where = f"registry {ref.registry}"
    if isinstance(reason, socket.gaierror):
        return RegistryError(
            f"{ref}: unknown registry {ref.registry.split(':')[0]!r} (no such host)",
            "check the host name in the reference",
        )
    if isinstance(reason, ConnectionRefusedError):
        return RegistryDown(
            f"{ref}: {where} refused the connection (is it down?)",
            "start the registry, or check the host and port in the reference",
        )
    if isinstance(reason, ssl.SSLError) and not plain_http:
        return RegistryError(
            f"{ref}: TLS with {where} failed: {reason}",
            "a plain-HTTP registry: list it in apptainer.plain_http_registries "
            "(or pass --no-https)",
        )
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return RegistryDown(f"{ref}: {where} did not answer in time", "try again later")
    return RegistryDown(f"{ref}: cannot reach {where}: {reason}", "check the network")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def credentials(registry: str) -> str | None:
    """``user:password`` for ``registry`` from Apptainer's credential store, if logged in."""
    configdir = os.environ.get("APPTAINER_CONFIGDIR") or str(Path.home() / ".apptainer")
    try:
        auths = json.loads((Path(configdir) / "docker-config.json").read_text())["auths"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for key in (registry, f"https://{registry}", f"http://{registry}", f"oras://{registry}"):
        entry = auths.get(key) if isinstance(auths, dict) else None
        if isinstance(entry, dict) and entry.get("auth"):
            with contextlib.suppress(ValueError):
                return base64.b64decode(entry["auth"]).decode()
    return None


def _authorization(challenge: str, ref: Reference, plain_http: bool, timeout: float) -> str | None:
    """The Authorization header answering a registry's 401 (Basic, or a Bearer token)."""
    login = credentials(ref.registry)
    basic = "Basic " + base64.b64encode(login.encode()).decode() if login else None
    scheme, _, params = challenge.partition(" ")
    if scheme.lower() == "basic":
        return basic
    if scheme.lower() != "bearer":
        return None
    fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
    realm = fields.pop("realm", None)
    if not realm:
        return None
    fields.setdefault("scope", f"repository:{ref.repository}:pull")
    url = f"{realm}?{urllib.parse.urlencode(fields)}"
    status, body, _ = _request(
        url, {"Authorization": basic} if basic else {}, ref, plain_http, timeout
    )
    if status != 200:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    token = data.get("token") or data.get("access_token")
    return f"Bearer {token}" if token else None


# --- push and pull ------------------------------------------------------------------------


def plain_http(ref: Reference, site: Site | None, no_https: bool = False) -> bool:
    """Whether to talk plain HTTP to ``ref``'s registry (``--no-https`` or the site says so)."""
    return no_https or (site is not None and ref.registry in site.apptainer.plain_http_registries)


def pull_dir(site: Site | None = None) -> Path:
    """Where pulled images are cached: ``apptainer.pull_dir``, else ``<images_dir>/pulled``."""
    from fcgtainer.images.build import images_dir

    if site is not None and site.apptainer.pull_dir:
        return Path(os.path.expandvars(site.apptainer.pull_dir)).expanduser()
    return images_dir(site) / "pulled"


def cached_path(resolved: Resolved, directory: Path) -> Path:
    """``<dir>/<registry>/<repository>/sha256-<hex>.sif``: one file per manifest digest."""
    ref = resolved.reference
    host = ref.registry.replace(":", "_")
    return directory / host / ref.repository / f"{resolved.digest.replace(':', '-')}.sif"


def pull(
    resolved: Resolved,
    directory: Path,
    *,
    binary: str = "apptainer",
    plain_http: bool = False,
) -> Path:
    """Pull the pinned digest into ``directory`` unless it is there; check the file's digest."""
    target = cached_path(resolved, directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target.with_name(f".{target.name}.lock")):
        if target.is_file() and origin(target).get("digest") == resolved.digest:
            from fcgtainer.images.build import image_digest  # cached by size and mtime

            if f"sha256:{image_digest(target)}" == resolved.layer_digest:
                return target  # pulled before and unaltered since
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        argv = [binary, "pull", "--force", *(["--no-https"] if plain_http else [])]
        argv += [str(tmp), resolved.pinned]
        try:
            proc.run(argv, timeout=3600, stdin="")
        except CommandError as exc:
            tmp.unlink(missing_ok=True)
            exc.hint = exc.hint or "check the reference, the network and `apptainer registry login`"
            raise
        got = "sha256:" + file_sha256(tmp)
        if got != resolved.layer_digest:
            tmp.unlink(missing_ok=True)
            raise RegistryError(
                f"{resolved.pinned}: digest mismatch: the manifest names the SIF "
                f"{resolved.layer_digest}, the pulled file is {got}",
                "the registry serves other bytes than it lists; nothing was used",
            )
        os.replace(tmp, target)
        ref = resolved.reference
        _write_json(
            target.with_suffix(".json"),
            {
                "reference": str(ref),
                "tag": ref.tag,
                "digest": resolved.digest,
                "pinned": resolved.pinned,
                "layer_digest": resolved.layer_digest,
                "sha256": got.removeprefix("sha256:"),
                "size": target.stat().st_size,
                "pulled": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
    return target


def stage(text: str, site: Site | None = None, *, no_https: bool = False) -> tuple[Path, Resolved]:
    """Resolve a reference once and pull its digest into the site's pull cache."""
    ref = parse(text)
    http = plain_http(ref, site, no_https)
    resolved = resolve(ref, plain_http=http)
    binary = site.apptainer.binary if site else "apptainer"
    return pull(resolved, pull_dir(site), binary=binary, plain_http=http), resolved


def origin(image: str | Path) -> dict[str, Any]:
    """Where a pulled image came from (reference, tag, digest), read beside it; {} if built."""
    try:
        data = json.loads(Path(image).with_suffix(".json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or "pinned" not in data:
        return {}
    return {k: data.get(k) for k in ("reference", "tag", "digest", "pinned")}


def push(
    image: Path,
    text: str,
    *,
    site: Site | None = None,
    no_https: bool = False,
) -> Resolved:
    """``apptainer push`` a SIF to a tag; record the pushed digest in its provenance."""
    ref = parse(text)
    if ref.digest or not ref.tag:
        raise RegistryError(
            f"{text}: push to a tag, not a digest", "the registry computes the digest"
        )
    if not image.is_file():
        raise NotFoundError(f"{image}: no such image", "build it with `fcgtainer build`")
    http = plain_http(ref, site, no_https)
    binary = site.apptainer.binary if site else "apptainer"
    _check_reachable(ref, http)
    argv = [binary, "push", *(["--no-https"] if http else []), str(image), str(ref)]
    try:
        proc.run(argv, timeout=3600, stdin="")
    except CommandError as exc:
        exc.hint = exc.hint or f"log in first: `apptainer registry login {SCHEME}{ref.registry}`"
        raise
    resolved = resolve(ref, plain_http=http)
    sha = file_sha256(image)
    if resolved.layer_digest != f"sha256:{sha}":
        raise RegistryError(
            f"{ref}: digest mismatch after push: the tag names {resolved.layer_digest}, "
            f"{image.name} is sha256:{sha}",
            "someone pushed to the same tag meanwhile; push again or use a new tag",
        )
    record_push(image, resolved, sha)
    return resolved


def _check_reachable(ref: Reference, http: bool) -> int:
    """Fail early and clearly when the registry is unknown or down (before Apptainer runs)."""
    status, _, _ = _get(ref, "/v2/", http, TIMEOUT)
    return status


def record_push(image: Path, resolved: Resolved, sha: str) -> None:
    """Add the pushed reference and digest to the image's provenance JSON, if it has one."""
    meta = image.with_suffix(".json")
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(data, dict) or "pinned" in data:
        return
    pushed = [p for p in data.get("pushed", []) if p.get("reference") != str(resolved.reference)]
    pushed.append(
        {
            "reference": str(resolved.reference),
            "digest": resolved.digest,
            "pinned": resolved.pinned,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    data["pushed"] = pushed
    data["sha256"] = sha  # signing changes the file after the build
    _write_json(meta, data)


def file_sha256(path: Path) -> str:
    """The sha256 of a file, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    with open(path, "w") as fd:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield


# --- the one entry point for submit ---------------------------------------------------------


def site_image(ref: str, site: Site) -> str | None:
    """The image a run on ``site`` uses, when registries or signatures are involved.

    A reference (``oras://...``, or a recipe the site maps to one in ``apptainer.image_refs``)
    is resolved to its digest once and pulled into the site's pull cache on this login node
    (compute nodes never fetch it); on a site with ``apptainer.require_signed`` the image,
    pulled or local, must be signed by a trusted key. Returns None when neither applies: the
    caller then resolves a local path or recipe as before.
    """
    from fcgtainer.images import signing

    target = site.apptainer.image_refs.get(ref, ref)
    if is_reference(target):
        path, resolved = stage(target, site)
        shown = f"{target} ({resolved.digest})"
    elif site.apptainer.require_signed:
        path = Path(_local(target, site))
        shown = str(path)
        if not path.is_file():
            return None  # preflight explains the missing image
    else:
        return None
    if site.apptainer.require_signed:
        signing.require_trusted(path, site, shown=shown)
    return str(path)


def _local(ref: str, site: Site) -> str:
    if ref.endswith(".sif") or "/" in ref:
        return str(Path(os.path.expanduser(ref)).absolute())
    from fcgtainer.images.build import find_image

    return find_image(ref, site)


def record_signature(image: Path, fingerprints: tuple[str, ...]) -> None:
    """Note who signed an image (and its new sha256: signing rewrites it) in its provenance."""
    meta = image.with_suffix(".json")
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and "pinned" not in data:
        data["signed_by"] = list(fingerprints)
        data["sha256"] = file_sha256(image)
        _write_json(meta, data)
