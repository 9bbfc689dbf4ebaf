"""Benchmark: added latency, CPU per edit, 1,000 in-flight edits, image-path micro-figures, policy decision time.

The gateway and the emulator run as separate processes (`editgate serve`, `editgate emulate` with render caching),
so each process's CPU and memory are its own. Prints a table and writes JSON. `--smoke` runs tiny counts (for CI);
numbers are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import timeit
from collections import Counter
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def photo_1024() -> tuple[bytes, bytes]:
    """A 1024x1024 photographic PNG (~1.2 MB) and its helmet mask, from the fixtures."""
    src = Image.open(FIXTURES / "astronaut.png").convert("RGB").resize((1024, 1024), Image.Resampling.LANCZOS)
    mask = Image.open(FIXTURES / "astronaut_helmet_mask.png").resize((1024, 1024), Image.Resampling.NEAREST)
    a, b = io.BytesIO(), io.BytesIO()
    src.save(a, "PNG")
    mask.save(b, "PNG")
    return a.getvalue(), b.getvalue()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def processes(latency_ms: float, tmp: Path, logs: Path):
    emu_port, gw_port = free_port(), free_port()
    config = tmp / "emulator.yaml"
    config.write_text(yaml.safe_dump({"cache_renders": True, "endpoints": {"images": {"latency_ms": latency_ms}}}))
    policy = yaml.safe_load(resources.files("policies").joinpath("default.yaml").read_text())
    for settings in policy["providers"].values():
        settings["max_concurrency"] = 2000
    (tmp / "policy.yaml").write_text(yaml.safe_dump(policy))
    env = {**os.environ, "OPENAI_API_KEY": "bench", "OPENAI_BASE_URL": f"http://127.0.0.1:{emu_port}/v1",
           "GEMINI_API_KEY": "bench", "GEMINI_BASE_URL": f"http://127.0.0.1:{emu_port}",
           "EDITGATE_POLICY_FILE": str(tmp / "policy.yaml"), "EDITGATE_LOG_LEVEL": "warning",
           "EDITGATE_LIMIT_MAX_REQUEST_BYTES": str(200 * 2**20)}  # fmt: skip
    cli = [sys.executable, "-m", "router.cli"]
    logs.mkdir(parents=True, exist_ok=True)  # warnings and errors of both processes, for a post-mortem
    emu = subprocess.Popen([*cli, "emulate", "--port", str(emu_port), "--config", str(config)], env=env,
                           stdout=subprocess.DEVNULL, stderr=(logs / "emulator.log").open("w"))  # fmt: skip
    gw = subprocess.Popen([*cli, "serve", "--port", str(gw_port), "--data-dir", str(tmp / "data")], env=env,
                          stdout=subprocess.DEVNULL, stderr=(logs / "gateway.log").open("w"))  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{emu_port}/_emulator/config")
        wait_http(f"http://127.0.0.1:{gw_port}/healthz")
        yield f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{emu_port}", gw.pid
    finally:
        for p in (gw, emu):
            p.terminate()
            p.wait(timeout=20)


def set_latency(emulator: str, latency_ms: float) -> None:
    plan = {"cache_renders": True, "endpoints": {"images": {"latency_ms": latency_ms}}}
    httpx.put(f"{emulator}/_emulator/config", json=plan).raise_for_status()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def run_load(send, concurrency: int, total: int) -> dict[str, Any]:
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
            "throughput_rps": len(latencies) / wall, "errors": sum(errors.values()),
            "error_kinds": dict(errors), "n": total}  # fmt: skip


def gateway_sender(client: httpx.AsyncClient, url: str, image: bytes, mask: bytes, **fields: str):
    files = [("image", ("photo.png", image, "image/png")), ("mask", ("mask.png", mask, "image/png"))]
    data = {"prompt": "replace the helmet with a bouquet", "provider": "openai-images", "preservation": "false",
            **fields}  # fmt: skip

    async def send() -> str | None:
        r = await client.post(f"{url}/v1/edits", files=files, data=data)
        if r.status_code == 200:
            return None
        try:
            return f"{r.status_code} {r.json()['error']['code']}"
        except (ValueError, KeyError, TypeError):
            return str(r.status_code)

    return send


def floor_sender(emulator: str, image: bytes, mask: bytes):
    import openai

    sdk = openai.AsyncOpenAI(api_key="bench", base_url=f"{emulator}/v1", max_retries=0, timeout=300,
                             http_client=httpx.AsyncClient(limits=httpx.Limits(max_connections=2000)))  # fmt: skip

    async def send() -> None:
        await sdk.images.edit(model="gpt-image-2", image=("photo.png", image, "image/png"),
                              mask=("mask.png", mask, "image/png"), prompt="replace the helmet with a bouquet",
                              size="1024x1024", quality="high", output_format="png", background="auto")  # fmt: skip

    return send


def added_latency(url: str, emulator: str, image: bytes, mask: bytes, smoke: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for concurrency in (1, 8, 32):
        total = max(8, concurrency * (2 if smoke else 6))

        async def measure(concurrency: int = concurrency, total: int = total) -> tuple[dict, dict]:
            limits = httpx.Limits(max_connections=2000)
            async with httpx.AsyncClient(timeout=300, limits=limits) as client:
                gw = gateway_sender(client, url, image, mask)
                floor = floor_sender(emulator, image, mask)
                await run_load(gw, concurrency, min(total, 8))  # warm-up
                await run_load(floor, concurrency, min(total, 8))
                return await run_load(floor, concurrency, total), await run_load(gw, concurrency, total)

        floor, gateway = asyncio.run(measure())
        out[f"c{concurrency}"] = {
            "floor": floor,
            "gateway": gateway,
            "added_p50_ms": gateway["p50"] - floor["p50"],
            "added_p90_ms": gateway["p90"] - floor["p90"],
            "added_p99_ms": gateway["p99"] - floor["p99"],
        }
    return out


def cpu_per_edit(url: str, pid: int, image: bytes, mask: bytes, smoke: bool) -> dict[str, float]:
    out = {}
    n = 5 if smoke else 30
    full = {"protect": "only_mask", "output_format": "webp", "preservation": "true"}
    for name, fields in (("pass_through", {}), ("full", full)):

        async def measure(fields: dict[str, str] = fields) -> float:
            async with httpx.AsyncClient(timeout=300) as client:
                send = gateway_sender(client, url, image, mask, **fields)
                await send()
                before = cpu_seconds(pid)
                for _ in range(n):
                    failure = await send()
                    assert failure is None, f"edit failed: {failure}"
                return (cpu_seconds(pid) - before) / n * 1000

        out[name] = asyncio.run(measure())
    return out


def in_flight(url: str, emulator: str, pid: int, image: bytes, mask: bytes, smoke: bool) -> dict[str, Any]:
    count, latency_ms = (50, 2000) if smoke else (1000, 30000)
    set_latency(emulator, latency_ms)

    async def measure() -> dict[str, Any]:
        limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
        async with httpx.AsyncClient(timeout=300, limits=limits) as client:
            return await run_load(gateway_sender(client, url, image, mask), count, count)

    result = asyncio.run(measure())
    metrics = httpx.get(f"{url}/metrics").text
    lag = next((float(line.split()[-1]) for line in metrics.splitlines()
                if line.startswith("editgate_event_loop_lag_peak_seconds")), float("nan"))  # fmt: skip
    set_latency(emulator, 0)
    return {"edits": count, "provider_latency_ms": latency_ms, "errors": result["errors"],
            "error_kinds": result["error_kinds"],
            "peak_rss_mb": peak_rss_mb(pid), "event_loop_lag_peak_ms": lag * 1000,
            "p50_ms": result["p50"], "p99_ms": result["p99"]}  # fmt: skip


def timed(fn, repeat: int) -> float:
    return min(timeit.repeat(fn, number=1, repeat=repeat)) * 1000


def micro(image: bytes, mask: bytes, smoke: bool) -> dict[str, float]:
    """Each step of the image path beside the library floors, so the choice of library stays a measurement."""
    import base64

    import cv2
    import pybase64

    from providers.imaging import decode, encode
    from router.intake.images import load_image
    from router.intake.masks import convert_mask
    from router.intake.metadata import strip_png
    from router.normalize import drift, mask_lock
    from router.settings import Limits

    r = 3 if smoke else 10
    pixels = np.ascontiguousarray(decode(image)[..., :3])
    uploaded_mask = load_image(mask, "mask", Limits()).blob
    edit = decode(mask)[..., 3] < 128
    other = np.clip(pixels.astype(np.int16) + 3, 0, 255).astype(np.uint8)
    b64 = base64.b64encode(encode(other, "png")).decode()

    def pillow(fmt: str, **kw: Any) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, fmt, **kw)
        return buf.getvalue()

    return {
        "pillow_decode_png": timed(lambda: np.asarray(Image.open(io.BytesIO(image))), r),
        "cv2_decode_png": timed(lambda: cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_UNCHANGED), r),
        "editgate_decode_png_vips": timed(lambda: decode(image), r),
        "intake_load_image": timed(lambda: load_image(image, "image", Limits()), r),
        "metadata_strip_png": timed(lambda: strip_png(image), r),
        "mask_intake_decode_and_convert": timed(
            lambda: convert_mask(decode(mask), "auto", (1024, 1024), uploaded=uploaded_mask), r
        ),
        "preservation_score": timed(lambda: drift(other, pixels, ~edit), r),
        "mask_lock": timed(lambda: mask_lock(other, pixels, edit, 3), r),
        "pillow_encode_png_default": timed(lambda: pillow("PNG"), r),
        "pillow_encode_png_level1": timed(lambda: pillow("PNG", compress_level=1), r),
        "cv2_encode_png_level1": timed(lambda: cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1]), r),
        "editgate_encode_png_vips": timed(lambda: encode(pixels, "png"), r),
        "pillow_encode_webp_method2": timed(lambda: pillow("WEBP", quality=90, method=2), r),
        "editgate_encode_webp_vips": timed(lambda: encode(pixels, "webp"), r),
        "editgate_encode_jpeg": timed(lambda: encode(pixels, "jpeg"), r),
        "stdlib_b64decode_result": timed(lambda: base64.b64decode(b64), r),
        "editgate_b64decode_result": timed(lambda: pybase64.b64decode(b64, validate=True), r),
    }


def decision_us(smoke: bool) -> dict[str, float]:
    from policies import Features, decide
    from policies.model import parse_policy
    from router.registry import CLOUD, LocalProvider

    policy = parse_policy(resources.files("policies").joinpath("default.yaml").read_text())
    caps = {"local": LocalProvider.capabilities, **{n: c.capabilities for n, c in CLOUD.items()}}
    est = {"gemini": 0.07, "openai-images": 0.14, "openai-responses": 0.14, "local": 0.0}
    n = 2000 if smoke else 20000
    out = {}
    for name, f in (("first_rule", Features(session_provider="openai-responses")),
                    ("typical", Features(tier="pro", has_mask=True)), ("all_rules", Features(tier="pro"))):  # fmt: skip
        t = min(timeit.repeat(lambda f=f: decide(f, policy, forced_provider=None, capabilities=caps, estimates=est,
                                                 keys={"tenant": "t"}), number=n, repeat=3))  # fmt: skip
        out[name] = t / n * 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny counts, for CI")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    args = parser.parse_args()
    image, mask = photo_1024()
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "photo": {"size": "1024x1024", "png_bytes": len(image)},
        "smoke": args.smoke,
    }
    results["micro_ms"] = micro(image, mask, args.smoke)
    results["decision_us"] = decision_us(args.smoke)
    with tempfile.TemporaryDirectory() as tmp, processes(0, Path(tmp), args.out.parent) as (url, emulator, pid):
        results["added_latency_ms"] = added_latency(url, emulator, image, mask, args.smoke)
        results["cpu_ms_per_edit"] = cpu_per_edit(url, pid, image, mask, args.smoke)
        results["in_flight"] = in_flight(url, emulator, pid, image, mask, args.smoke)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(render(results))
    print(f"\nwritten: {args.out}")


def render(r: dict[str, Any]) -> str:
    mode = "smoke" if r["smoke"] else "full"
    lines = [
        f"editgate benchmark ({mode}) on {r['machine']['cpus']} CPUs, Python {r['machine']['python']}; "
        f"photo 1024x1024 PNG {r['photo']['png_bytes'] / 1e6:.2f} MB",
        "",
    ]
    lines.append("1. added latency (gateway minus SDK straight to the emulator), ms")
    lines.append(
        "   "
        + " ".join(f"{h:>10}" for h in ("conc", "floor p50", "gw p50", "added p50", "added p90", "added p99", "rps"))
    )
    for c, v in r["added_latency_ms"].items():
        row = (v["floor"]["p50"], v["gateway"]["p50"], v["added_p50_ms"], v["added_p90_ms"], v["added_p99_ms"],
               v["gateway"]["throughput_rps"])  # fmt: skip
        lines.append(f"   {c[1:]:>10} " + " ".join(f"{x:>10.1f}" for x in row))
    cpu = r["cpu_ms_per_edit"]
    lines.append(f"2. gateway CPU per edit: pass-through {cpu['pass_through']:.1f} ms, full {cpu['full']:.1f} ms")
    f = r["in_flight"]
    lines.append(
        f"3. in flight: {f['edits']} edits x {f['provider_latency_ms'] / 1000:g} s provider latency: "
        f"{f['errors']} errors {f['error_kinds'] or ''}, peak RSS {f['peak_rss_mb']:.0f} MB, "
        f"loop lag peak {f['event_loop_lag_peak_ms']:.0f} ms, p50 {f['p50_ms'] / 1000:.0f} s"
    )
    lines.append("4. image path, ms (best of runs): " + ", ".join(f"{k} {v:.1f}" for k, v in r["micro_ms"].items()))
    lines.append("5. policy decision, us: " + ", ".join(f"{k} {v:.1f}" for k, v in r["decision_us"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
