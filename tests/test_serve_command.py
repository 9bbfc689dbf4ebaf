"""`editgate serve` with no provider keys: the emulator starts beside it and says so."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import fixture_bytes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    """Until ``url/healthz`` answers 200; fails at once if the process exits (a busy machine starts slowly)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "serve did not come up"
        time.sleep(0.1)


def test_serve_without_keys_runs_offline_on_the_emulator(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "GEMINI_API_KEY", "IMAGE_EDIT_PROVIDER")}
    cmd = [sys.executable, "-m", "router.cli", "serve", "--port", str(port), "--data-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url, proc)
        files = [
            ("image", ("c.png", fixture_bytes("coffee.png"))),
            ("mask", ("m.png", fixture_bytes("coffee_background_mask.png"))),
        ]
        r = httpx.post(f"{url}/v1/edits", files=files, data={"prompt": "a beach", "provider": "gemini"}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["emulated"] is True and r.json()["provider"] == "gemini"
        assert sorted(httpx.get(f"{url}/readyz").json()["providers"]) == [
            "gemini",
            "local",
            "openai-images",
            "openai-responses",
        ]
    finally:
        proc.terminate()
        output = proc.communicate(timeout=15)[0]
    assert "EMULATOR" in output and "test double" in output
