"""``Idempotency-Key`` on every endpoint that can spend money: the same key and body return the stored
answer (its exact body and headers, plus ``Idempotent-Replayed: true``) without a second provider call
or ledger charge; the same key with another body is a 409, and so is a key whose request is still
running. A failed request frees its key for a retry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response

from router.errors import ApiError
from router.intake.request import RawInputs
from router.models import EditResponse
from router.service import Gateway


@dataclass(slots=True)
class Answer:
    """What a money-spending handler answered, as it is stored for replay."""

    body: dict[str, Any]
    headers: dict[str, str]
    version_id: str
    """The version the key belongs to: deleting its session frees the key."""

    @classmethod
    def of_edit(cls, response: EditResponse) -> Answer:
        body = response.model_dump(mode="json")
        return cls(body, edit_headers(body), response.id)

    def response(self, replayed: bool = False) -> Response:
        headers = {**self.headers, "Idempotent-Replayed": "true"} if replayed else self.headers
        return Response(self.body, status_code=200, headers=headers)

    def stored(self) -> dict[str, Any]:
        return {"body": self.body, "headers": self.headers}

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> Answer:
        if set(stored) != {"body", "headers"}:  # stored by 0.1.0: a native edit's body alone
            return cls(stored, edit_headers(stored), str(stored.get("id", "")))
        return cls(stored["body"], stored["headers"], "")


def request_digest(path: str, fields: Mapping[str, Any], raw: RawInputs | None) -> str:
    """What makes two requests the same: the path, the parsed fields and the uploaded bytes."""
    h = hashlib.sha256(path.encode())
    h.update(json.dumps(fields, sort_keys=True, default=str).encode())
    if raw is not None:
        for data in (raw.image, raw.mask or b"", *raw.references):
            h.update(hashlib.sha256(data).digest())
    return h.hexdigest()


async def idempotent(
    request: Request, gw: Gateway, tenant: str, fields: Mapping[str, Any], raw: RawInputs | None,
    run: Callable[[], Awaitable[Answer]],
) -> Response:  # fmt: skip
    """Run ``run`` at most once per ``Idempotency-Key`` (per tenant); ``fields`` and ``raw`` identify the request."""
    key = request.headers.get("idempotency-key")
    if not key:
        return (await run()).response()
    if len(key) > 200:
        raise ApiError(422, "invalid_parameter", "Idempotency-Key is at most 200 characters.", "Idempotency-Key")
    stale_after = gw.settings.request_timeout_s + 60

    def digest() -> str:
        return request_digest(request.url.path, fields, raw.load() if raw is not None else None)

    claim = await gw.store.claim_idempotency(tenant, key, await gw.workers.run(digest), stale_after)
    if claim.state == "conflict":
        raise ApiError(409, "idempotency_key_reused", "This Idempotency-Key was used with a different request.")
    if claim.state == "in_progress":
        message = "A request with this Idempotency-Key is still running; retry to receive its answer."
        raise ApiError(409, "idempotency_in_progress", message, retry_after=1)
    if claim.state == "replay":
        return Answer.from_stored(claim.response or {}).response(replayed=True)
    try:
        answer = await run()
    except BaseException:
        await gw.store.release_idempotency(tenant, key)
        raise
    await gw.store.complete_idempotency(tenant, key, answer.version_id, 200, answer.stored())
    return answer.response()


def edit_headers(body: dict) -> dict[str, str]:
    """editgate's own metadata as headers, for clients (like OpenAI's SDK) that only read the body's image."""
    cost = (body.get("cost") or {}).get("actual_usd")
    headers = {
        "x-editgate-provider": str(body.get("provider", "")),
        "x-editgate-route-rule": str((body.get("route") or {}).get("rule", "")),
        "x-editgate-cost-usd": "unknown" if cost is None else f"{cost:.6f}",
        "x-editgate-edit-id": str(body.get("id", "")),
    }
    if body.get("emulated"):
        headers["x-editgate-emulated"] = "true"
    return headers
