"""The bare pass-through proxy: the least a Python gateway can do, as the yardstick for editgate's own cost.

Starlette + uvicorn + httpx: the request body is read, forwarded as it came to the same upstream editgate
calls, and the upstream's answer returned. No parsing, no checks, no storage. It runs as its own process
(`python -m bench.bare_proxy`) so the CPU it uses is its own.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

_FORWARDED = ("content-type", "authorization")


def create_app(upstream: str) -> Starlette:
    """A proxy that forwards ``POST /v1/images/edits`` to ``upstream`` (scheme, host and port)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=2000, max_keepalive_connections=2000)
        async with httpx.AsyncClient(base_url=upstream, timeout=300, limits=limits) as client:
            app.state.client = client
            yield

    async def forward(request: Request) -> Response:
        headers = {k: v for k in _FORWARDED if (v := request.headers.get(k)) is not None}
        answer = await request.app.state.client.post(request.url.path, content=await request.body(), headers=headers)
        return Response(answer.content, answer.status_code, media_type=answer.headers.get("content-type"))

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [Route("/v1/images/edits", forward, methods=["POST"]), Route("/healthz", healthz)]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_proxy", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:9000")
    args = parser.parse_args()
    uvicorn.run(create_app(args.upstream), host="127.0.0.1", port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
