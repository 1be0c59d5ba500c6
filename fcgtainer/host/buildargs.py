"""Build arguments of recipes, computed on the building host (``{{ name }}`` in a .def).

``debian_mirror``: the Debian mirror of this host's apt sources (never written into a recipe);
``ca_bundle``: its CA bundle, for HTTPS through intercepting proxies; ``node``: where the
node-side scripts (:mod:`fcgtainer.node`) are installed, copied into payload images.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from fcgtainer import node
from fcgtainer.errors import ConfigError


def debian_mirror() -> str:
    """The Debian mirror of this host's apt sources (``$FCGTAINER_DEBIAN_MIRROR`` overrides)."""
    explicit = os.environ.get("FCGTAINER_DEBIAN_MIRROR") or os.environ.get("FCG_DEBIAN_MIRROR")
    if explicit:
        return explicit.rstrip("/")
    if shutil.which("apt-get"):
        done = subprocess.run(
            ["apt-get", "indextargets", "--format", "$(REPO_URI) $(LABEL)"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        for line in done.stdout.splitlines():
            uri, _, label = line.partition(" ")
            if label == "Debian" and uri.startswith(("http://", "https://")):
                return uri.rstrip("/")
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        try:
            text = path.read_text()
        except OSError:
            continue
        for match in re.finditer(r"^(?:deb\s+(?:\[[^\]]*\]\s+)?|URIs:\s*)(\S+)", text, re.M):
            if "security" not in match.group(1):
                return match.group(1).rstrip("/")
    raise ConfigError(
        "debian_mirror: no Debian mirror in this host's apt sources",
        "set FCGTAINER_DEBIAN_MIRROR to the Debian mirror URL this machine can reach",
    )


def ca_bundle() -> str:
    """The host's CA bundle (the one pip and curl use here)."""
    candidates = [
        os.environ.get(name, "") for name in ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE")
    ]
    candidates += ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(Path(candidate).resolve())
    raise ConfigError("ca_bundle: no CA bundle found", "set SSL_CERT_FILE to your CA bundle")


BUILD_ARGS: dict[str, Callable[[], str]] = {
    "debian_mirror": debian_mirror,
    "ca_bundle": ca_bundle,
    "node": lambda: str(node.source_dir()),
}
