"""Provenance of a result: the provider's C2PA content credentials, kept, lost, or re-signed by editgate.

A C2PA manifest is bound to the exact bytes it was signed over, so it survives only where the provider's
bytes pass through untouched (then they are delivered as the provider wrote them, not metadata-stripped).
Where editgate must re-encode (a resize or crop, a mask-lock composite, a format change, a flattened
alpha) the manifest is lost, and the result says so; with a signing certificate configured
(``EDITGATE_C2PA_CERT`` / ``EDITGATE_C2PA_KEY``) editgate then signs its own manifest naming what it did,
with the provider's output as its ingredient. Editgate's manifest carries no thumbnail and nothing of the
caller's photo (no ingredient for it, no metadata, no file name).

Reading never reaches the network (no remote manifests, no OCSP): a provider's bytes cannot make the
gateway fetch anything. Verifying a manifest hashes the whole image (tens of ms for a 3 MB PNG), so it is
off by default (``validation: not_checked``; the caller gets the provider's exact bytes and can verify
them) and on with ``EDITGATE_C2PA_VERIFY=true``.
"""

from __future__ import annotations

import io
import struct
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import c2pa
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from providers.imaging import MIME, Format
from router.intake.metadata import strip_metadata
from router.models import Provenance

log = structlog.get_logger("editgate.provenance")

_SETTINGS = {
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
    "builder": {"thumbnail": {"enabled": False}},
}
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_C2PA_ACTION = {
    "resized": "c2pa.resized",
    "cropped": "c2pa.cropped",
    "composited": "c2pa.edited",
    "flattened": "c2pa.edited",
    "transcoded": "c2pa.transcoded",
}
_DESCRIPTION = {
    "composited": "mask lock: pixels outside the edit region restored from the source",
    "flattened": "transparency flattened onto white",
}


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a reader found in the provider's bytes: the active manifest's signer and declared actions."""

    issuer: str | None
    actions: tuple[str, ...]
    validation: str | None


@cache
def _context(verify: bool = False) -> c2pa.Context:
    settings = {**_SETTINGS, "verify": {**_SETTINGS["verify"], "verify_after_reading": verify}}
    return c2pa.Context(c2pa.Settings.from_dict(settings))


def _active_actions(active: dict[str, Any]) -> tuple[str, ...]:
    actions: list[str] = []
    for assertion in active.get("assertions") or []:
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            actions += [str(a.get("action")) for a in (assertion.get("data") or {}).get("actions") or []]
    return tuple(actions)


def _png_has_store(data: bytes) -> bool:
    pos = len(_PNG_SIG)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind in (b"caBX", b"IEND"):
            return kind == b"caBX"
        pos += 12 + length
    return False


def _jpeg_has_store(data: bytes) -> bool:
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker == 0xDA:  # start of scan: metadata segments come before it
            return False
        if marker == 0xEB and b"c2pa" in data[pos + 4 : pos + 2 + length]:  # APP11 JUMBF labelled c2pa
            return True
        pos += 2 + length
    return False


def _webp_has_store(data: bytes) -> bool:
    pos = 12
    while pos + 8 <= len(data):
        kind, length = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if kind == b"C2PA":
            return True
        pos += 8 + length + (length & 1)
    return False


def has_manifest_store(data: bytes) -> bool:
    """Whether the container holds a C2PA manifest store (PNG ``caBX`` chunk, JPEG APP11 JUMBF, WebP ``C2PA``
    chunk), by walking its chunk headers: microseconds, so results without credentials never reach the reader."""
    if data.startswith(_PNG_SIG):
        return _png_has_store(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_has_store(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_has_store(data)
    return b"c2pa" in data


def read_manifest(data: bytes, mime: str, verify: bool = False) -> Manifest | None:
    """The active C2PA manifest embedded in ``data``, or None (none there, or one the reader cannot parse).
    ``verify``: check its signature and hash binding (else ``validation`` is ``not_checked``)."""
    if not has_manifest_store(data):
        return None
    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, _context(verify))
        if reader is None:
            return None
        with reader:
            active = reader.get_active_manifest() or {}
            state = reader.get_validation_state() if verify else "not_checked"
    except c2pa.C2paError as exc:
        log.info("c2pa_unreadable", error=type(exc).__name__)
        return None
    issuer = (active.get("signature_info") or {}).get("issuer")
    return Manifest(issuer=issuer, actions=_active_actions(active), validation=str(state) if state else None)


def keep_or_strip(data: bytes, fmt: Format, manifest: Manifest | None) -> bytes:
    """Bytes to deliver unchanged: the provider's own when they carry a manifest (stripping would break its
    hash binding), else stripped of metadata as any pass-through is. Raises ``StripError`` like the stripper."""
    return data if manifest is not None else strip_metadata(data, fmt)


def passed_through(manifest: Manifest | None) -> Provenance:
    if manifest is None:
        return Provenance(c2pa="absent")
    return Provenance(c2pa="kept", issuer=manifest.issuer, actions=list(manifest.actions),
                      validation=manifest.validation)  # fmt: skip


def changes(*, resized: bool, cropped: bool, composited: bool, flattened: bool, transcoded: bool) -> list[str]:
    """What editgate did to the provider's pixels, in order; a re-encode with none of these is a transcode."""
    done = [name for name, on in (("composited", composited), ("cropped", cropped), ("resized", resized),
                                  ("flattened", flattened), ("transcoded", transcoded)) if on]  # fmt: skip
    return done or ["transcoded"]


@dataclass(slots=True)
class EditgateSigner:
    """The operator's certificate chain and key: signs editgate's own manifest onto re-encoded results."""

    chain_pem: bytes
    key_pem: bytes
    alg: str
    _signer: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(self.alg, self.chain_pem, self.key_pem, None))

    def sign(self, data: bytes, fmt: Format, done: list[str], ingredient: tuple[bytes, str] | None) -> bytes:
        actions: list[dict[str, Any]] = []
        if ingredient is not None:
            actions.append({"action": "c2pa.opened", "parameters": {"ingredientIds": ["provider-output"]}})
        for name in done:
            action: dict[str, Any] = {"action": _C2PA_ACTION[name], "softwareAgent": "editgate"}
            if name in _DESCRIPTION:
                action["description"] = _DESCRIPTION[name]
            actions.append(action)
        manifest = {
            "claim_generator_info": [{"name": "editgate", "version": "1"}],
            "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}],
        }
        out = io.BytesIO()
        with self._lock, c2pa.Builder(manifest, context=_context()) as builder:
            if ingredient is not None:
                source, mime = ingredient
                about = {"title": "provider output", "relationship": "parentOf", "label": "provider-output"}
                builder.add_ingredient(about, mime, io.BytesIO(source))
            builder.sign(self._signer, MIME[fmt], io.BytesIO(data), out)
        return out.getvalue()


def _alg_for(key_pem: bytes) -> str:
    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {256: "es256", 384: "es384", 521: "es512"}[key.curve.key_size]
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise ValueError(f"unsupported signing key type {type(key).__name__}: use EC P-256/384/521, RSA or Ed25519")


@cache
def load_signer(cert: Path | None, key: Path | None) -> EditgateSigner | None:
    """The configured signer (None when no certificate is configured); a half or broken setting fails loudly."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ValueError("EDITGATE_C2PA_CERT and EDITGATE_C2PA_KEY must be set together")
    key_pem = key.read_bytes()
    return EditgateSigner(chain_pem=cert.read_bytes(), key_pem=key_pem, alg=_alg_for(key_pem))


@dataclass(frozen=True, slots=True)
class C2paConfig:
    """The operator's choices: verify providers' manifests; sign editgate's own onto re-encoded results."""

    verify: bool = False
    signer: EditgateSigner | None = None


@cache
def load_config(cert: Path | None, key: Path | None, verify: bool) -> C2paConfig:
    return C2paConfig(verify=verify, signer=load_signer(cert, key))


def after_reencode(manifest: Manifest | None, provider: tuple[bytes, str], data: bytes, fmt: Format,
                   done: list[str], signer: EditgateSigner | None) -> tuple[bytes, Provenance]:  # fmt: skip
    """The re-encoded result and its provenance: the provider's manifest is lost; editgate's own is added when
    a signer is configured (the provider's output as its ingredient when it had credentials)."""
    report = Provenance(
        c2pa="lost" if manifest is not None else "absent",
        issuer=manifest.issuer if manifest else None,
        actions=list(manifest.actions) if manifest else [],
        validation=manifest.validation if manifest else None,
        editgate_actions=done,
    )
    if signer is None:
        return data, report
    try:
        signed = signer.sign(data, fmt, done, provider if manifest is not None else None)
    except c2pa.C2paError as exc:  # the result is still good; only its credentials are missing
        log.warning("c2pa_sign_failed", error=type(exc).__name__)
        return data, report
    return signed, report.model_copy(update={"editgate_manifest": True})
