"""Cut off clients that are too slow to send their request body (slowloris-style uploads).

uvicorn bounds idle keep-alive connections but not a body that trickles in, so each half-sent upload
would hold a connection, a task and its spooled parts for as long as the client likes. The deadline
counts only the time the app spends waiting on the client for body bytes, so a busy server never
times out a client that was sending promptly.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from router.errors import ApiError


class BodyReadTimeout(ApiError):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            408,
            "body_timeout",
            f"The request body did not arrive within {timeout_s:g} s; send it again on a faster connection.",
        )


def body_deadline(timeout_s: float) -> Callable[[ASGIApp], ASGIApp]:
    """Middleware: a receive that waits past ``timeout_s`` in total raises :class:`BodyReadTimeout` (a 408 in
    the usual error shape, rendered by the app's handlers) and the response closes the connection."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            left = timeout_s
            body_done = timed_out = False

            async def receive_in_time() -> Message:
                nonlocal left, body_done, timed_out
                if body_done:
                    return await receive()
                started = anyio.current_time()
                with anyio.move_on_after(left):
                    message = await receive()
                    left -= anyio.current_time() - started
                    body_done = message["type"] != "http.request" or not message.get("more_body", False)
                    return message
                timed_out = True
                raise BodyReadTimeout(timeout_s)

            async def send_closing(message: Message) -> None:
                if timed_out and message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
                await send(message)

            await app(scope, receive_in_time, send_closing)

        return middleware

    return wrap
