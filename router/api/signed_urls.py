"""``?url_style=signed`` on any endpoint: the JSON answer's file URLs become signed, expiring links.

An ASGI middleware rather than a parameter of each handler, so every answer that names a stored image (edits,
sessions, versions, comparisons, the drop-in's ``url`` answers, idempotent replays) gets the same treatment
from one place. Only the requests that ask pay for it; streams (SSE) pass through untouched.
"""

from __future__ import annotations

from urllib.parse import parse_qs

import msgspec
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from router.links import LinkSigner

_STYLES = ("api", "signed")


def _style(scope: Scope) -> str | None:
    query = scope.get("query_string", b"")
    if b"url_style" not in query:
        return None
    values = parse_qs(query.decode("latin-1")).get("url_style", [])
    return values[-1] if values else None


async def _refuse(send: Send, style: str) -> None:
    message = f"url_style must be 'api' or 'signed', not {style[:40]!r}."
    body = msgspec.json.encode({"error": {"code": "invalid_url_style", "message": message, "param": "url_style"}})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 422, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def signed_urls_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        style = _style(scope) if scope["type"] == "http" else None
        if style is None or style == "api":
            await app(scope, receive, send)
            return
        if style not in _STYLES:
            await _refuse(send, style)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                if not headers.get(b"content-type", b"").startswith(b"application/json"):
                    start = None
                    await send(message)
                    return
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            caller = scope.get("state", {}).get("caller")
            signer: LinkSigner = scope["app"].state.gateway.links
            if caller is not None and 200 <= start["status"] < 300:
                body = msgspec.json.encode(signer.sign_urls(msgspec.json.decode(body), caller.tenant))
            headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await app(scope, receive, rewrite)

    return middleware
