"""Signed, expiring links to stored images, so a browser can show a result without the API key.

``/v1/files/{id}?tenant=T&session=S&expires=UNIX&signature=KID.MAC``: the MAC is HMAC-SHA256 over the tenant,
the session, the file id and the expiry under the key ``KID``. Keys rotate: the first of ``EDITGATE_LINK_KEYS``
signs, every listed key verifies, so a new key goes first and the old one stays listed until its links have
expired. A valid link still passes an ownership check, for its session: it stops working when that session is
deleted, even where the same bytes live on in another session (files are content-addressed).

Responses carry signed links when the caller asks with ``?url_style=signed``: every editgate file URL in the
answer is rewritten (images, stored inputs, drop-in ``url`` answers), whatever the endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from router.errors import ApiError

_FILE_URL = re.compile(r"^(?P<base>.*/v1/files/)(?P<sha>[0-9a-f]{64})$")


def _mac(key: bytes, tenant: str, session: str, file_id: str, expires: int) -> str:
    message = f"editgate-link-v1\n{tenant}\n{session}\n{file_id}\n{expires}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def parse_keys(spec: str) -> tuple[tuple[str, bytes], ...]:
    """``kid:secret,kid2:secret2`` → ((kid, secret), …); the first signs."""
    keys = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kid, sep, secret = item.partition(":")
        if not sep or not kid or not secret or "." in kid:
            raise ValueError("EDITGATE_LINK_KEYS is 'kid:secret[,kid:secret…]' (kid without dots)")
        keys.append((kid, secret.encode()))
    if not keys:
        raise ValueError("EDITGATE_LINK_KEYS names no key")
    return tuple(keys)


def local_keys(data_dir: Path) -> tuple[tuple[str, bytes], ...]:
    """The embedded default: one random key kept in the data dir (one process, or replicas sharing the dir).
    Replicas on separate machines must share ``EDITGATE_LINK_KEYS`` instead."""
    path = data_dir / "link-key"
    if not path.exists():
        path.write_text(f"local:{secrets.token_urlsafe(32)}")
        path.chmod(0o600)
    return parse_keys(path.read_text().strip())


@dataclass(frozen=True, slots=True)
class LinkSigner:
    keys: tuple[tuple[str, bytes], ...]
    ttl_s: float = 3600.0
    ttl_by_tenant: Mapping[str, float] = field(default_factory=dict)

    def query(self, tenant: str, session: str, file_id: str, now: float | None = None) -> str:
        expires = int((now if now is not None else time.time()) + self.ttl_by_tenant.get(tenant, self.ttl_s))
        kid, key = self.keys[0]
        mac = _mac(key, tenant, session, file_id, expires)
        return (f"tenant={quote(tenant, safe='')}&session={quote(session, safe='')}&expires={expires}"
                f"&signature={kid}.{mac}")  # fmt: skip

    def verify(self, tenant: str, session: str, file_id: str, expires: int, signature: str,
               now: float | None = None) -> None:  # fmt: skip
        """Raises 403 for a tampered, unknown-key or expired link; returns when the link is good."""
        kid, _, mac = signature.partition(".")
        key = dict(self.keys).get(kid)
        if key is None or not hmac.compare_digest(_mac(key, tenant, session, file_id, expires), mac):
            raise ApiError(403, "invalid_signature", "This link's signature is not valid.", "signature")
        if expires < (now if now is not None else time.time()):
            raise ApiError(403, "link_expired", "This link has expired: ask the API for a new one.", "expires")

    def sign_urls(self, body: Any, tenant: str, session: str = "") -> Any:
        """The same JSON value with every editgate file URL replaced by a signed one, each for the session of the
        nearest enclosing record (``session_id``, or a session's own ``id``)."""
        if isinstance(body, dict):
            own_id = body.get("id")
            session = body.get("session_id") or (own_id if str(own_id).startswith("ses_") else session)
            return {k: self.sign_urls(v, tenant, session) for k, v in body.items()}
        if isinstance(body, list):
            return [self.sign_urls(v, tenant, session) for v in body]
        if isinstance(body, str) and session and (m := _FILE_URL.match(body)):
            return f"{body}?{self.query(tenant, session, m['sha'])}"
        return body
