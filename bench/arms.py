"""The side-by-side arms: the bare proxy and three ways through editgate, same upstream, same photo, same run.

For each arm: CPU of the serving process per edit at concurrency 8 (from /proc, counted until the process
goes quiet, so work done after the answer counts too), edits/s at concurrency 8, and added p50 at
concurrency 1 (the arm's p50 minus the upstream's own, the two taking turns).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import profile
from bench.load import Send, native_sender, openai_sender, pct, run_load
from bench.procs import Services, settled_cpu_seconds

FULL_EDIT = {"protect": "only_mask", "output_format": "webp", "preservation": "true"}


@dataclass(frozen=True)
class Arm:
    name: str
    label: str
    sender: Callable[[httpx.AsyncClient, Services, bytes, bytes], Send]
    pid: Callable[[Services], int]


ARMS = (
    Arm("bare_proxy", "bare proxy (Starlette + uvicorn + httpx)",
        lambda c, s, i, m: openai_sender(c, s.bare_proxy, i, m), lambda s: s.bare_proxy_pid),
    Arm("drop_in", "editgate /v1/images/edits, defaults",
        lambda c, s, i, m: openai_sender(c, s.gateway, i, m), lambda s: s.gateway_pid),
    Arm("pass_through", "editgate /v1/edits, preservation=false",
        lambda c, s, i, m: native_sender(c, s.gateway, i, m), lambda s: s.gateway_pid),
    Arm("full", "editgate /v1/edits, full edit",
        lambda c, s, i, m: native_sender(c, s.gateway, i, m, **FULL_EDIT), lambda s: s.gateway_pid),
)  # fmt: skip


async def _load(arm: Arm, svc: Services, image: bytes, mask: bytes, concurrency: int, total: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=2000)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        return await run_load(arm.sender(client, svc, image, mask), concurrency, total)


async def _paired(arm: Arm, svc: Services, image: bytes, mask: bytes, total: int) -> tuple[dict, dict]:
    """Concurrency 1, the upstream directly and the arm taking turns, so the machine's drift hits both alike."""
    limits = httpx.Limits(max_connections=2000)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        direct, through = openai_sender(client, svc.emulator, image, mask), arm.sender(client, svc, image, mask)
        upstream, routed = [], []
        for _ in range(total):
            upstream.append(await run_load(direct, 1, 1))
            routed.append(await run_load(through, 1, 1))
    return _merged(upstream), _merged(routed)


def _merged(runs: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [r["p50"] for r in runs if r["ok"]]
    errors = Counter[str]()
    for r in runs:
        errors.update(r["error_kinds"])
    return {"p50": pct(latencies, 50), "p90": pct(latencies, 90), "p99": pct(latencies, 99), "ok": len(latencies),
            "errors": sum(errors.values()), "error_kinds": dict(errors), "n": len(runs)}  # fmt: skip


def measure(arm: Arm, svc: Services, image: bytes, mask: bytes, smoke: bool,
            profile_dir: Path | None = None) -> dict[str, Any]:  # fmt: skip
    n1, n8 = (4, 16) if smoke else (30, 96)
    pid = arm.pid(svc)
    warm = asyncio.run(_load(arm, svc, image, mask, 8, 8))  # connections, caches, the upstream's render cache
    assert warm["errors"] == 0, f"{arm.name} fails: {warm['error_kinds']}"
    upstream, c1 = asyncio.run(_paired(arm, svc, image, mask, n1))
    before = settled_cpu_seconds(pid)
    c8 = asyncio.run(_load(arm, svc, image, mask, 8, n8))
    cpu_ms = (settled_cpu_seconds(pid) - before) / max(c8["ok"], 1) * 1000
    out = {"label": arm.label, "cpu_ms_per_edit_c8": cpu_ms, "edits_per_s_c8": c8["throughput_rps"],
           "added_p50_ms_c1": c1["p50"] - upstream["p50"], "upstream_p50_ms_c1": upstream["p50"],
           "c1": c1, "c8": c8, "errors": c1["errors"] + c8["errors"]}  # fmt: skip
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        stacks = profile_dir / f"profile-{arm.name}.txt"
        spy = profile.start(pid, stacks)
        try:
            asyncio.run(_load(arm, svc, image, mask, 8, n8))
        finally:
            profile.stop(spy)
        out["profile"] = {"collapsed_stacks": str(stacks), **profile.top_frames(stacks)}
    return out


def measure_all(svc: Services, image: bytes, mask: bytes, smoke: bool,
                profile_dir: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Every arm, then each figure as a ratio to the bare proxy's."""
    arms = {arm.name: measure(arm, svc, image, mask, smoke, profile_dir) for arm in ARMS}
    bare = arms["bare_proxy"]
    for figures in arms.values():
        figures["ratio_to_bare"] = {
            key: figures[key] / bare[key] if bare[key] > 0 else float("nan")
            for key in ("cpu_ms_per_edit_c8", "edits_per_s_c8", "added_p50_ms_c1")
        }
    return arms
