"""Signatures: sign images with Apptainer's PGP keys, and let a site run only trusted ones.

``apptainer sign`` adds a PGP signature to the SIF itself, so it travels with the image
through a registry. A site with ``apptainer.require_signed: true`` lists the fingerprints it
trusts (``apptainer.trusted_keys``); before anything is queued, ``submit`` runs
``apptainer verify --local`` (the public keys come from the user's keyring, ``apptainer key
import``; ``APPTAINER_KEYSDIR`` chooses another one) and refuses an unsigned image, one
signed by a key it does not trust, and one whose signature does not verify.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from pathlib import Path

from fcgtainer import proc
from fcgtainer.config.site import Site
from fcgtainer.errors import CommandError, ConfigError


class SignatureError(ConfigError):
    """An image a site may not run: unsigned, untrusted key, or a broken signature."""


@dataclass(frozen=True)
class Verification:
    """What ``apptainer verify --json --local`` found in an image."""

    verified: bool
    signatures: int
    fingerprints: tuple[str, ...]  # upper-case; a 16-digit key id when the key is unknown
    signers: tuple[str, ...]
    error: str


def sign(image: Path, *, binary: str = "apptainer", keyidx: int | None = None) -> Verification:
    """Sign ``image`` in place with a key of the local keyring; return who signed it."""
    argv = [binary, "sign", *(["--keyidx", str(keyidx)] if keyidx is not None else [])]
    try:
        proc.run([*argv, str(image)], timeout=600, stdin="")
    except CommandError as exc:
        exc.hint = (
            "create a key with `apptainer key newpair` (keyring: ~/.apptainer/keys or "
            "APPTAINER_KEYSDIR); a key with a passphrase needs `apptainer sign` run by hand"
        )
        raise
    return verify(image, binary=binary)


def verify(image: Path, *, binary: str = "apptainer") -> Verification:
    """Check the signatures of ``image`` against the local keyring (never a key server)."""
    done = proc.run([binary, "verify", "--json", "--local", str(image)], check=False, timeout=600)
    try:
        data = json.loads(done.stdout[done.stdout.index("{") :])
    except ValueError:
        data = {}
    keys = [k.get("Signer", {}) for k in data.get("SignerKeys") or [] if isinstance(k, dict)]
    fingerprints = sorted({str(k.get("Fingerprint", "")).upper() for k in keys} - {""})
    signers = sorted({str(k.get("Name", "")) for k in keys} - {""})
    signatures = int(data.get("Signatures") or 0)
    if signatures and not fingerprints:  # signed, but by a key this keyring lacks
        fingerprints = signature_issuers(image, binary=binary)
    lines = (done.stderr or done.stdout).strip().splitlines()
    error = lines[-1].removeprefix("FATAL:").strip() if lines else ""
    return Verification(
        done.returncode == 0, signatures, tuple(fingerprints), tuple(signers), error
    )


def require_trusted(image: Path, site: Site, *, shown: str | None = None) -> Verification:
    """Refuse ``image`` unless it is signed by a key ``site`` trusts (exit 2, before queuing)."""
    name = shown or str(image)
    trusted = site.apptainer.trusted_keys
    where = f"{site.source}: apptainer"
    if not trusted:
        raise SignatureError(
            f"{where}.require_signed is true but apptainer.trusted_keys is empty",
            "list the fingerprints of the keys this site trusts (`apptainer key list`)",
        )
    found = verify(image, binary=site.apptainer.binary)
    if found.signatures == 0:
        raise SignatureError(
            f"image {name} is unsigned; {site.name} runs only images signed by {_keys(trusted)}",
            "sign it with a trusted key (`fcgtainer build --sign` or `fcgtainer push --sign`, "
            "or `apptainer sign`), push it again and resubmit",
        )
    trusted_ones = [f for f in found.fingerprints if _matches(f, trusted)]
    if not trusted_ones:
        who = f" ({', '.join(found.signers)})" if found.signers else ""
        raise SignatureError(
            f"image {name} is signed by untrusted key {_keys(found.fingerprints) or '?'}{who}; "
            f"{site.name} trusts only {_keys(trusted)}",
            f"re-sign it with a trusted key, or add that fingerprint to {where}.trusted_keys "
            "if you trust it",
        )
    if not found.verified:
        raise SignatureError(
            f"image {name}: the signature of trusted key {_keys(trusted_ones)} does not "
            f"verify: {found.error}",
            "import the public key (`apptainer key import KEY.asc`) if it is missing; "
            "otherwise the image was altered after signing: rebuild, sign and push it",
        )
    return found


def _matches(fingerprint: str, trusted: tuple[str, ...]) -> bool:
    """A fingerprint, or the 16-digit key id of an unknown key, names a trusted key."""
    return any(t == fingerprint or t.endswith(fingerprint) for t in trusted)


def _keys(fingerprints: tuple[str, ...] | list[str]) -> str:
    return ", ".join(fingerprints)


# --- the issuer of a signature the keyring cannot check -------------------------------------


def signature_issuers(image: Path, *, binary: str = "apptainer") -> list[str]:
    """Fingerprints (or key ids) that signed ``image``, read from its signature objects."""
    try:
        listing = proc.run([binary, "sif", "list", str(image)], timeout=60).stdout
    except CommandError:
        return []
    found: set[str] = set()
    for line in listing.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) >= 5 and fields[0].isdigit() and fields[-1].startswith("Signature"):
            try:
                dump = proc.run([binary, "sif", "dump", fields[0], str(image)], timeout=60).stdout
            except CommandError:
                continue
            issuer = pgp_issuer(dump)
            if issuer:
                found.add(issuer)
    return sorted(found)


_ARMOR = re.compile(
    r"-----BEGIN PGP SIGNATURE-----\r?\n(.*?)-----END PGP SIGNATURE-----", re.DOTALL
)


def pgp_issuer(text: str) -> str | None:
    """The issuer fingerprint (or key id) of the first armored OpenPGP signature in text.

    Reads the signature packet (RFC 4880 5.2.3): subpacket 33 is the issuer's fingerprint,
    16 its key id.
    """
    match = _ARMOR.search(text)
    if not match:
        return None
    lines = match.group(1).splitlines()
    body = lines[lines.index("") + 1 :] if "" in lines else lines
    try:
        data = base64.b64decode("".join(x for x in body if not x.startswith("=")))
    except (binascii.Error, ValueError):
        return None
    packet = _first_packet(data)
    if packet is None or len(packet) < 6 or packet[0] not in (4, 5):
        return None
    hashed_len = int.from_bytes(packet[4:6], "big")
    hashed = packet[6 : 6 + hashed_len]
    rest = packet[6 + hashed_len :]
    unhashed = rest[2 : 2 + int.from_bytes(rest[:2], "big")]
    key_id = None
    for kind, value in [*_subpackets(hashed), *_subpackets(unhashed)]:
        if kind == 33 and len(value) > 1:
            return value[1:].hex().upper()
        if kind == 16 and len(value) == 8:
            key_id = value.hex().upper()
    return key_id


def _first_packet(data: bytes) -> bytes | None:
    if not data or not data[0] & 0x80:
        return None
    if data[0] & 0x40:  # new format: tag in the low six bits
        if data[0] & 0x3F != 2:
            return None
        first = data[1]
        if first < 192:
            return data[2 : 2 + first]
        if first < 224:
            return data[3 : 3 + ((first - 192) << 8) + data[2] + 192]
        return data[6 : 6 + int.from_bytes(data[2:6], "big")]
    if (data[0] >> 2) & 0x0F != 2:  # old format
        return None
    size = {0: 1, 1: 2, 2: 4}.get(data[0] & 3)
    if size is None:
        return None
    length = int.from_bytes(data[1 : 1 + size], "big")
    return data[1 + size : 1 + size + length]


def _subpackets(area: bytes) -> list[tuple[int, bytes]]:
    out = []
    i = 0
    while i < len(area):
        first = area[i]
        if first < 192:
            length, i = first, i + 1
        elif first < 255:
            length, i = ((first - 192) << 8) + area[i + 1] + 192, i + 2
        else:
            length, i = int.from_bytes(area[i + 1 : i + 5], "big"), i + 5
        if length == 0 or i + length > len(area):
            break
        out.append((area[i] & 0x7F, area[i + 1 : i + length]))
        i += length
    return out
