"""Standard Webhooks signatures, made with the ``standardwebhooks`` library so any implementation verifies them.

Each attempt is signed afresh (receivers refuse timestamps older than five minutes), over the stored body,
with the message's one ``webhook-id``: a retry is the same message, which receivers deduplicate by id.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - a name, not a secret


def new_secret() -> str:
    """24 random bytes in the spec's ``whsec_`` + base64 form (what receivers paste into their verifier)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def signed_headers(secret: str, webhook_id: str, body: str, now: float) -> dict[str, str]:
    """The three headers of one attempt at ``now`` (epoch seconds)."""
    moment = datetime.fromtimestamp(int(now), tz=UTC)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now)),
        "webhook-signature": Webhook(secret).sign(webhook_id, moment, body),
    }
