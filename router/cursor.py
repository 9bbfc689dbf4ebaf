"""Opaque keyset cursors for the listing endpoints.

A cursor is the last row's sort key ``(created_at, id)``, base64url-encoded with a short check bound
to the listing and the tenant it was issued for. The check is not a secret (the query is tenant-scoped
either way): it makes a cursor that was edited, truncated, or carried to another listing or tenant a
400 naming ``cursor`` instead of a silently wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re

from router.errors import ApiError

Key = tuple[float, str]
"""A row's position in newest-first order: (created_at, id)."""

MAX_CURSOR_CHARS = 200
_BAD = "The cursor is not one this listing issued; pass `next_cursor` from the previous page unchanged."


def _check(listing: str, tenant: str, payload: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=8, key=f"{listing}\0{tenant}".encode()[:64]).hexdigest()


def encode_cursor(listing: str, tenant: str, key: Key) -> str:
    created, row_id = float(key[0]), key[1]
    payload = json.dumps([created, row_id], separators=(",", ":")).encode()
    token = json.dumps([created, row_id, _check(listing, tenant, payload)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def decode_cursor(listing: str, tenant: str, cursor: str, ids: re.Pattern[str]) -> Key:
    """The key a cursor holds, or a 400 (``param: cursor``) for anything this service did not issue."""
    bad = ApiError(400, "invalid_cursor", _BAD, "cursor")
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise bad
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        created, row_id, check = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):  # not base64, not JSON, not three items
        raise bad from None
    if not (
        isinstance(created, float)
        and math.isfinite(created)
        and isinstance(row_id, str)
        and ids.fullmatch(row_id)
        and isinstance(check, str)
    ):
        raise bad
    payload = json.dumps([created, row_id], separators=(",", ":")).encode()
    if not hmac.compare_digest(check, _check(listing, tenant, payload)):
        raise bad
    return created, row_id
