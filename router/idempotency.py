"""``Idempotency-Key`` on every endpoint that can spend money: the same key and body return the stored
answer (its exact body and headers, plus ``Idempotent-Replayed: true``) without a second provider call
or ledger charge; the same key with another body is a 409, and so is a key whose request is still
running, unless the repeat asks for an async answer: then it is the same 202 with the edit's current
record (what a client that lost the first 202 needs to go on polling). A failed request frees its
key for a retry. The key's claim and answer are written in the edit's own accept and finish
transactions (see router/lifecycle.py).
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
from router.lifecycle import ClaimTaken, IdempotencyClaim
from router.models import EditResponse
from router.service import Gateway
from router.storage.store import Claim


@dataclass(slots=True)
class Answer:
    """What a money-spending handler answered, as it is stored for replay."""

    body: dict[str, Any]
    headers: dict[str, str]
    version_id: str
    """The version the key belongs to: deleting its session frees the key."""
    status: int = 200

    @classmethod
    def of_edit(cls, response: EditResponse) -> Answer:
        body = response.model_dump(mode="json")
        return cls(body, edit_headers(body), response.id)

    def response(self, replayed: bool = False) -> Response:
        headers = {**self.headers, "Idempotent-Replayed": "true"} if replayed else self.headers
        return Response(self.body, status_code=self.status, headers=headers)

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


def _key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key and len(key) > 200:
        raise ApiError(422, "invalid_parameter", "Idempotency-Key is at most 200 characters.", "Idempotency-Key")
    return key or None


Pending = Callable[[str], Awaitable[Answer | None]]
"""The answer for a repeat whose edit (by version id) is still open, or None to be told to retry."""


async def _held(claim: Claim, pending: Pending | None = None) -> Response:
    """The answer for a key another request holds: its stored answer, the open edit's current
    record (``pending``), or a 409."""
    if claim.state == "in_progress" and pending is not None and claim.version_id:
        answer = await pending(claim.version_id)
        if answer is not None:
            return answer.response(replayed=True)
    if claim.state == "conflict":
        raise ApiError(409, "idempotency_key_reused", "This Idempotency-Key was used with a different request.")
    if claim.state == "replay":
        return Answer.from_stored(claim.response or {}).response(replayed=True)
    message = "A request with this Idempotency-Key is still running; retry to receive its answer."
    raise ApiError(409, "idempotency_in_progress", message, retry_after=1)


async def idempotent(
    request: Request, gw: Gateway, tenant: str, fields: Mapping[str, Any], raw: RawInputs | None,
    run: Callable[[IdempotencyClaim | None], Awaitable[Answer]], pending: Pending | None = None,
) -> Response:  # fmt: skip
    """One edit at most once per ``Idempotency-Key`` (per tenant); ``fields`` and ``raw`` identify the
    request; ``pending`` answers a repeat while the key's edit is still open (async requests). The key
    is checked here (a read) and claimed by ``run``'s accept transaction, which answers or frees it in
    the edit's terminal one: no transaction of its own."""
    key = _key(request)
    if key is None:
        return (await run(None)).response()
    digest = await gw.workers.run(
        lambda: request_digest(request.url.path, fields, raw.load() if raw is not None else None)
    )
    stale_after = gw.settings.request_timeout_s + 60
    found = await gw.store.peek_idempotency(tenant, key, digest, stale_after)
    if found.state != "new":
        return await _held(found, pending)
    try:
        answer = await run(IdempotencyClaim(tenant, key, digest, found.stale_since))
    except ClaimTaken:  # another request claimed it between the check and the accept
        found = await gw.store.peek_idempotency(tenant, key, digest, stale_after)
        return await _held(found if found.state != "new" else Claim("in_progress"), pending)
    return answer.response()


async def idempotent_batch(
    request: Request, gw: Gateway, tenant: str, fields: Mapping[str, Any], raw: RawInputs | None,
    run: Callable[[], Awaitable[Answer]],
) -> Response:  # fmt: skip
    """The same for a request that makes several edits (a compare): the key has transactions of its own."""
    key = _key(request)
    if key is None:
        return (await run()).response()
    stale_after = gw.settings.request_timeout_s + 60

    def digest() -> str:
        return request_digest(request.url.path, fields, raw.load() if raw is not None else None)

    claim = await gw.store.claim_idempotency(tenant, key, await gw.workers.run(digest), stale_after)
    if claim.state != "new":
        return await _held(claim)
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
        "x-editgate-model": str(body.get("model", "")),
        "x-editgate-route-rule": str((body.get("route") or {}).get("rule", "")),
        "x-editgate-cost-usd": "unknown" if cost is None else f"{cost:.6f}",
        "x-editgate-edit-id": str(body.get("id", "")),
    }
    if body.get("emulated"):
        headers["x-editgate-emulated"] = "true"
    images = body.get("images") or []
    if images and (provenance := images[0].get("provenance")):
        signed = "; editgate-signed" if provenance["editgate_manifest"] else ""
        headers["x-editgate-c2pa"] = provenance["c2pa"] + signed
    return headers
