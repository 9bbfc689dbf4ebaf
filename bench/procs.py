"""The bench's processes: the emulator (the one upstream), editgate, and the bare proxy, each with its own CPU."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx
import yaml

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Services:
    gateway: str
    gateway_pid: int
    emulator: str
    bare_proxy: str
    bare_proxy_pid: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def settled_cpu_seconds(pid: int, quiet: float = 0.01, limit: float = 10.0) -> float:
    """The process's CPU once it has gone quiet, so work a gateway does after answering is counted too."""
    deadline = time.monotonic() + limit
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = cpu_seconds(pid)
        if now - last <= quiet:
            return now
        last = now
    return last


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_http(url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def set_latency(emulator: str, latency_ms: float) -> None:
    plan = {"cache_renders": True, "endpoints": {"images": {"latency_ms": latency_ms}}}
    httpx.put(f"{emulator}/_emulator/config", json=plan, timeout=120).raise_for_status()


@contextmanager
def services(tmp: Path, logs: Path) -> Iterator[Services]:
    """Start the emulator (render cache on, no latency), `editgate serve` and the bare proxy in front of it."""
    emu_port, gw_port, bare_port = free_port(), free_port(), free_port()
    config = tmp / "emulator.yaml"
    config.write_text(yaml.safe_dump({"cache_renders": True, "endpoints": {"images": {"latency_ms": 0}}}))
    policy = yaml.safe_load(resources.files("policies").joinpath("default.yaml").read_text())
    for settings in policy["providers"].values():
        settings["max_concurrency"] = 2000
    (tmp / "policy.yaml").write_text(yaml.safe_dump(policy))
    emulator = f"http://127.0.0.1:{emu_port}"
    env = {**os.environ, "OPENAI_API_KEY": "bench", "OPENAI_BASE_URL": f"{emulator}/v1",
           "GEMINI_API_KEY": "bench", "GEMINI_BASE_URL": emulator,
           "EDITGATE_POLICY_FILE": str(tmp / "policy.yaml"), "EDITGATE_LOG_LEVEL": "warning",
           "EDITGATE_LIMIT_MAX_REQUEST_BYTES": str(200 * 2**20)}  # fmt: skip
    cli = [sys.executable, "-m", "router.cli"]
    logs.mkdir(parents=True, exist_ok=True)  # warnings and errors of each process, for a post-mortem

    def start(argv: list[str], log: str) -> subprocess.Popen:
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=(logs / log).open("w"))

    bare_proxy = [sys.executable, "-m", "bench.bare_proxy", "--port", str(bare_port), "--upstream", emulator]
    emu = start([*cli, "emulate", "--port", str(emu_port), "--config", str(config)], "emulator.log")
    gw = start([*cli, "serve", "--port", str(gw_port), "--data-dir", str(tmp / "data")], "gateway.log")
    bare = start(bare_proxy, "bare_proxy.log")
    started = [emu, gw, bare]
    try:
        wait_http(f"{emulator}/_emulator/config")
        wait_http(f"http://127.0.0.1:{gw_port}/healthz")
        wait_http(f"http://127.0.0.1:{bare_port}/healthz")
        yield Services(f"http://127.0.0.1:{gw_port}", gw.pid, emulator, f"http://127.0.0.1:{bare_port}", bare.pid)
    finally:
        for p in reversed(started):
            p.terminate()
            p.wait(timeout=120)
