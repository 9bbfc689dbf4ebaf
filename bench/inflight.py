"""1,000 edits in flight against a slow provider: errors, the gateway's peak RSS and its event-loop lag."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from bench.load import native_sender, pct, run_load
from bench.procs import Services, peak_rss_mb, set_latency

_LAG_NOW = "editgate_event_loop_lag_seconds "  # the worst lag of the last second
_LAG_PEAK = "editgate_event_loop_lag_peak_seconds "


def _gauge(metrics: str, name: str) -> float:
    return next((float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(name)), float("nan"))


def in_flight(svc: Services, image: bytes, mask: bytes, smoke: bool) -> dict[str, Any]:
    """The lag p99 is taken over the gateway's per-second worst lag, sampled each second: an upper bound."""
    count, latency_ms = (50, 2000) if smoke else (1000, 30000)
    set_latency(svc.emulator, latency_ms)

    async def measure() -> tuple[dict[str, Any], list[float]]:
        limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
        lags: list[float] = []
        async with httpx.AsyncClient(timeout=300, limits=limits) as client, httpx.AsyncClient(timeout=30) as probe:

            async def sample() -> None:
                while True:
                    await asyncio.sleep(1)
                    lags.append(_gauge((await probe.get(f"{svc.gateway}/metrics")).text, _LAG_NOW))

            sampler = asyncio.create_task(sample())
            try:
                result = await run_load(native_sender(client, svc.gateway, image, mask), count, count)
            finally:
                sampler.cancel()
        return result, lags

    try:
        result, lags = asyncio.run(measure())
    finally:
        set_latency(svc.emulator, 0)
    peak = _gauge(httpx.get(f"{svc.gateway}/metrics").text, _LAG_PEAK)
    return {"edits": count, "provider_latency_ms": latency_ms, "errors": result["errors"],
            "error_kinds": result["error_kinds"], "peak_rss_mb": peak_rss_mb(svc.gateway_pid),
            "event_loop_lag_p99_ms": pct(lags, 99) * 1000, "event_loop_lag_peak_ms": peak * 1000,
            "p50_ms": result["p50"], "p99_ms": result["p99"]}  # fmt: skip
