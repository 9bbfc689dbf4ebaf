"""`editgate serve --workers 2`: two processes on one socket, the emulator started once by the parent, and one
`/metrics` that counts every worker's edits whichever worker answers the scrape."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.conftest import fixture_bytes
from tests.test_routing_integration import policy_file
from tests.test_serve_command import _free_port

FILES = {
    "image": ("c.png", fixture_bytes("coffee.png")),
    "mask": ("m.png", fixture_bytes("coffee_background_mask.png")),
}


def _edits_counted(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(float(m[1]) for m in re.finditer(r"^editgate_requests_total\{[^}]*\} ([0-9.e+]+)$", text, re.M))


def _serve_two_workers(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[str], str]:
    """`editgate serve --workers 2` on a free port with the emulator (no provider keys); its output piped."""
    port = _free_port()
    full = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "GEMINI_API_KEY", "IMAGE_EDIT_PROVIDER",
                                                               "PROMETHEUS_MULTIPROC_DIR")} | env  # fmt: skip
    cmd = [sys.executable, "-m", "router.cli", "serve", "--port", str(port), "--data-dir", str(tmp_path),
           "--workers", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, f"http://127.0.0.1:{port}"


def _both_workers(proc: subprocess.Popen[str], url: str, pids: set[int]) -> None:
    """Fill ``pids`` with the two workers' pids as they answer (it is the caller's, to clean up after a failure)."""
    deadline = time.monotonic() + 180  # each worker imports and migrates on its own: slow on a busy box
    while len(pids) < 2:  # a new connection each time: the kernel spreads them over both workers
        try:
            pids.add(httpx.get(f"{url}/healthz").json()["pid"])
        except httpx.TransportError:
            time.sleep(0.1)
        assert time.monotonic() < deadline and proc.poll() is None, f"two workers did not answer: {pids}"


def test_two_workers_share_the_socket_the_emulator_and_the_metrics(tmp_path: Path) -> None:
    proc, url = _serve_two_workers(tmp_path)
    try:
        pids: set[int] = set()
        _both_workers(proc, url, pids)
        assert proc.pid not in pids  # the parent supervises; the workers serve

        def edit(i: int) -> httpx.Response:
            provider = "local" if i % 2 else "openai-images"  # the cloud half reaches the parent's one emulator
            prompt = "remove the mug" if provider == "local" else "a red mug"
            return httpx.post(f"{url}/v1/edits", files=FILES, data={"prompt": prompt, "provider": provider},
                              timeout=120)  # fmt: skip

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(edit, range(8)))
        assert [r.status_code for r in answers] == [200] * 8, [r.text for r in answers if r.status_code != 200]
        assert {r.json()["emulated"] for r in answers if r.json()["provider"] == "openai-images"} == {True}
        scraped = {_edits_counted(url) for _ in range(10)}  # whichever worker answers, the same total
        assert scraped == {8.0}
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert output.count("emulator_serving_cloud_providers") == 1, output[-3000:]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_workers_do_not_outlive_a_killed_supervisor(tmp_path: Path) -> None:
    """A supervisor killed outright (SIGKILL, the OOM killer) cannot stop its workers: they would serve on,
    unsupervised, holding the port a restarted editgate needs. Each worker asks the kernel for SIGTERM when
    its parent dies, and drains as on any SIGTERM."""
    proc, url = _serve_two_workers(tmp_path, EDITGATE_DRAIN_S="2")
    pids: set[int] = set()
    try:
        _both_workers(proc, url, pids)
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in pids), "a worker served on after its supervisor was killed"
    finally:
        proc.kill()
        proc.communicate(timeout=30)
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_metrics_show_the_queue_the_database_and_the_budget_lines(
    make_server: Callable[..., str], tmp_path: Path
) -> None:
    url = make_server(policy_file=policy_file(tmp_path, budgets={"default_daily_usd": 25.0}))
    with httpx.Client(base_url=url, timeout=60) as c:
        queued = c.post("/v1/edits", headers={"Prefer": "respond-async"}, files=FILES,
                        data={"prompt": "remove the mug", "provider": "local"})  # fmt: skip
        assert queued.status_code == 202
        text = c.get("/metrics").text
    assert re.search(r"^editgate_dependency_up\{dependency=\"database\"\} 1\.0$", text, re.M)
    assert re.search(r"^editgate_queued_edits [0-9.]+$", text, re.M)
    assert re.search(r"^editgate_budget_daily_usd\{tenant=\"\"\} 25\.0$", text, re.M)
