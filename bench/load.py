"""Closed-loop load: N requests with at most C in flight, and the senders for each arm's request."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import numpy as np

PROMPT = "replace the helmet with a bouquet"
Send = Callable[[], Awaitable[str | None]]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def run_load(send: Send, concurrency: int, total: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            t = time.perf_counter()
            try:
                failure = await send()
            except Exception as exc:
                failure = type(exc).__name__
            if failure is None:
                latencies.append((time.perf_counter() - t) * 1000)
            else:
                errors[failure] += 1

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    wall = time.perf_counter() - started
    return {"p50": pct(latencies, 50), "p90": pct(latencies, 90), "p99": pct(latencies, 99),
            "throughput_rps": len(latencies) / wall, "ok": len(latencies), "errors": sum(errors.values()),
            "error_kinds": dict(errors), "n": total}  # fmt: skip


def _failure(r: httpx.Response) -> str | None:
    if r.status_code == 200:
        return None
    try:
        return f"{r.status_code} {r.json()['error']['code']}"
    except (ValueError, KeyError, TypeError):
        return str(r.status_code)


def native_sender(client: httpx.AsyncClient, url: str, image: bytes, mask: bytes, **fields: str) -> Send:
    """editgate's own `POST /v1/edits`, pinned to openai-images; `fields` add to or override the defaults."""
    files = [("image", ("photo.png", image, "image/png")), ("mask", ("mask.png", mask, "image/png"))]
    data = {"prompt": PROMPT, "provider": "openai-images", "preservation": "false", **fields}

    async def send() -> str | None:
        return _failure(await client.post(f"{url}/v1/edits", files=files, data=data))

    return send


def openai_sender(client: httpx.AsyncClient, base_url: str, image: bytes, mask: bytes) -> Send:
    """What an unmodified `openai` client sends to `images.edit` at `base_url` (the upstream, the bare proxy or
    editgate's drop-in): the same request for each. The raw-response API leaves the answer unparsed, so the
    bench's own CPU stays out of the way of the processes it measures."""
    import openai

    sdk = openai.AsyncOpenAI(api_key="bench", base_url=f"{base_url}/v1", max_retries=0, timeout=300,
                             http_client=client)  # fmt: skip

    async def send() -> str | None:
        await sdk.images.with_raw_response.edit(model="gpt-image-2", image=("photo.png", image, "image/png"),
                                                mask=("mask.png", mask, "image/png"), prompt=PROMPT,
                                                size="1024x1024", quality="high", output_format="png",
                                                background="auto")  # fmt: skip
        return None  # a non-2xx answer raises, and run_load counts the exception's type

    return send
