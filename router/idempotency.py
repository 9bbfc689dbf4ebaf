"""``Idempotency-Key``: the same key and body return the stored result without a second provider call
or ledger charge; the same key with another body is a 409. A failed edit frees its key for a retry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable

from litestar import Request, Response

from router.errors import ApiError
from router.intake.request import RawInputs
from router.models import EditRequest
from router.service import Gateway


def request_digest(path: str, req: EditRequest, raw: RawInputs) -> str:
    h = hashlib.sha256(path.encode())
    h.update(json.dumps(req.model_dump(mode="json"), sort_keys=True).encode())
    for data in (raw.image, raw.mask or b"", *raw.references):
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest()


async def idempotent(
    request: Request, gw: Gateway, tenant: str, req: EditRequest, raw: RawInputs,
    run: Callable[[], Awaitable[dict]],
) -> Response:  # fmt: skip
    key = request.headers.get("idempotency-key")
    if not key:
        body = await run()
        return Response(body, headers=edit_headers(body))
    if len(key) > 200:
        raise ApiError(422, "invalid_parameter", "Idempotency-Key is at most 200 characters.", "Idempotency-Key")
    stale_after = gw.settings.request_timeout_s + 60
    digest = await gw.workers.run(lambda: request_digest(request.url.path, req, raw.load()))
    claim = await gw.store.claim_idempotency(tenant, key, digest, stale_after)
    if claim.state == "conflict":
        raise ApiError(409, "idempotency_key_reused", "This Idempotency-Key was used with a different request.")
    if claim.state == "in_progress":
        raise ApiError(409, "idempotency_in_progress", "A request with this Idempotency-Key is still running.")
    if claim.state == "replay":
        headers = {**edit_headers(claim.response or {}), "Idempotent-Replayed": "true"}
        return Response(claim.response, status_code=claim.status_code or 200, headers=headers)
    try:
        body = await run()
    except BaseException:
        await gw.store.release_idempotency(tenant, key)
        raise
    await gw.store.complete_idempotency(tenant, key, body["id"], 200, body)
    return Response(body, headers=edit_headers(body))


def edit_headers(body: dict) -> dict[str, str]:
    """editgate's own metadata as headers, for clients (like OpenAI's SDK) that only read the body's image."""
    cost = (body.get("cost") or {}).get("actual_usd")
    return {
        "x-editgate-provider": str(body.get("provider", "")),
        "x-editgate-route-rule": str((body.get("route") or {}).get("rule", "")),
        "x-editgate-cost-usd": "unknown" if cost is None else f"{cost:.6f}",
        "x-editgate-edit-id": str(body.get("id", "")),
    }
