"""C2PA content credentials on the emulated OpenAI images, as OpenAI attaches them to its own.

The signing certificate is a TEST certificate: a throwaway CA and a leaf issued by it, generated in
memory (``cryptography``) the first time the emulator signs, never written to disk and trusted by
nobody. A reader reports the manifest as well formed and validly signed but its signer as untrusted,
which is all the gateway's provenance path needs to be exercised end to end: a manifest that survives
a pass-through byte for byte, and one that a resize or a composite loses.
"""

from __future__ import annotations

import datetime
import io
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

import c2pa
import pybase64
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ISSUER = "OpenAI (emulated, test certificate)"
"""The organization the test certificate names: what a reader reports as the manifest's issuer."""
SOFTWARE_AGENT = "emulated gpt-image"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True, slots=True)
class TestCredentials:
    """A certificate chain (leaf first, PEM) and its private key (PEM), for ES256 signing."""

    chain_pem: bytes
    key_pem: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, ISSUER)])  # fmt: skip


def _key_usage(*, sign_certs: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not sign_certs, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=sign_certs, crl_sign=sign_certs,
                         encipher_only=False, decipher_only=False)  # fmt: skip


def make_test_credentials(organization_cn: str = "Emulator test CA") -> TestCredentials:
    """A CA and a leaf it signed (C2PA refuses a self-signed leaf): EC P-256, ten years, email-protection EKU."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(organization_cn)
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign_certs=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    leaf = (
        x509.CertificateBuilder().subject_name(_name("Emulator test signer")).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign_certs=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return TestCredentials(chain_pem=leaf.public_bytes(pem) + ca.public_bytes(pem), key_pem=key_pem)


class _Signer:
    """One signer and one no-thumbnail context for the process; signing is serialized (one native handle)."""

    def __init__(self, credentials: TestCredentials) -> None:
        info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, credentials.chain_pem, credentials.key_pem, None)
        self.signer = c2pa.Signer.from_info(info)
        self.context = c2pa.Context(c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": False}}}))
        self.lock = threading.Lock()

    def sign(self, data: bytes, fmt: str, action: str) -> bytes:
        manifest = {
            "claim_generator_info": [{"name": "editgate-emulator", "version": "1"}],
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                {"action": action, "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA, "softwareAgent": SOFTWARE_AGENT},
            ]}}],
        }  # fmt: skip
        out = io.BytesIO()
        with self.lock, c2pa.Builder(manifest, context=self.context) as builder:
            builder.sign(self.signer, _MIME[fmt], io.BytesIO(data), out)
        return out.getvalue()


@cache
def _signer() -> _Signer:
    return _Signer(make_test_credentials())


def sign_b64(b64: str, fmt: str, action: str = "c2pa.created") -> str:
    """A base64 image with the emulator's test manifest embedded (a new manifest each time, as a real render).
    Only the raster formats editgate delivers are signed; gif and svg answers pass unsigned (editgate refuses
    to deliver them, so nothing downstream reads their credentials)."""
    if fmt not in _MIME:
        return b64
    return pybase64.b64encode(_signer().sign(pybase64.b64decode(b64), fmt, action)).decode()


def credential_images(body: dict[str, Any], fmt: str) -> dict[str, Any]:
    """An Images API answer whose every ``data[].b64_json`` carries content credentials."""
    data = [{**item, "b64_json": sign_b64(item["b64_json"], fmt)} if item.get("b64_json") else item
            for item in body.get("data", [])]  # fmt: skip
    return {**body, "data": data}


def credential_output(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Responses ``output`` whose every rendered ``image_generation_call`` carries content credentials."""
    return [
        {**item, "result": sign_b64(item["result"], item.get("output_format") or "png")}
        if item.get("type") == "image_generation_call" and item.get("result") else item
        for item in output
    ]  # fmt: skip
