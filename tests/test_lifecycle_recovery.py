"""A crash strands nothing: ``kill -9`` of a subprocess server during a provider call, then a restart
on the same data dir with a short lease: the version becomes ``interrupted``, the ledger has the
ambiguous row, the Idempotency-Key is free again and the retry succeeds. SIGTERM drains in-flight
edits up to ``EDITGATE_DRAIN_S`` and marks the rest interrupted: nothing is left ``running``."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import fixture_bytes
from tests.lifecycle_server import ServerProcess, wait_for

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")
SHORT_LEASE = {"EDITGATE_LEASE_S": "1", "EDITGATE_RECOVERY_INTERVAL_S": "0.3"}


def _send(url: str, key: str, out: dict) -> None:
    files = [("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))]
    try:
        r = httpx.post(f"{url}/v1/edits", files=files, data={"prompt": "a sandy beach", "provider": "gemini"},
                       headers={"Idempotency-Key": key}, timeout=120)  # fmt: skip
        out["response"] = r
    except httpx.TransportError as exc:
        out["error"] = exc


def _calls(emulator: str) -> int:
    return int(httpx.get(f"{emulator}/_emulator/stats").json()["requests"].get("gemini", 0))


def _in_flight(server: ServerProcess, emulator: str, key: str) -> tuple[threading.Thread, dict]:
    out: dict = {}
    thread = threading.Thread(target=_send, args=(server.url, key, out), daemon=True)
    thread.start()
    wait_for(lambda: _calls(emulator) >= 1, 30, "the provider call")
    return thread, out


def test_kill_9_mid_call_then_restart_interrupts_ledgers_frees_the_key_and_retries(
    tmp_path: Path, emulator: str, faults: Callable[..., None]
) -> None:
    faults("gemini", hang=1.0, hang_s=60)
    server = ServerProcess(tmp_path, emulator, **SHORT_LEASE)
    try:
        _in_flight(server, emulator, "crash-key")
        ((version_id, session_id, number, status),) = server.query(
            "SELECT id, session_id, number, status FROM versions WHERE number > 0"
        )
        assert status == "running"
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)
    finally:
        server.stop()
    faults("gemini")  # the provider answers again
    restarted_at = time.monotonic()
    server = ServerProcess(tmp_path, emulator, **SHORT_LEASE)
    try:
        took = wait_for(
            lambda: server.query("SELECT status FROM versions WHERE id = ?", version_id) == [("interrupted",)],
            30, "the interrupted state",
        )  # fmt: skip
        print(
            f"restart to interrupted: {time.monotonic() - restarted_at:.2f} s (after the server was up: {took:.2f} s)"
        )
        rows = server.query("SELECT provider, outcome, estimated_usd FROM attempts WHERE version_id = ?", version_id)
        assert [(p, o) for p, o, _ in rows] == [("gemini", "ambiguous")]
        assert rows[0][2] is not None and rows[0][2] > 0, "the ambiguous row carries the candidate's estimate"
        edit = httpx.get(f"{server.url}/v1/edits/{version_id}").json()
        assert edit["status"] == "interrupted" and edit["error"]["code"] == "interrupted"
        retried = httpx.post(f"{server.url}/v1/sessions/{session_id}/versions/{number}/retry", timeout=60)
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == "succeeded"
        out: dict = {}
        _send(server.url, "crash-key", out)  # the same key is free: a new edit, not a 409
        assert out["response"].status_code == 200, out["response"].text
        assert out["response"].json()["id"] != version_id
    finally:
        server.stop()


def test_sigterm_interrupts_what_the_drain_time_does_not_cover(
    tmp_path: Path, emulator: str, faults: Callable[..., None]
) -> None:
    faults("gemini", hang=1.0, hang_s=60)
    server = ServerProcess(tmp_path, emulator, EDITGATE_DRAIN_S="1")
    try:
        _in_flight(server, emulator, "drain-key")
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) is not None
        statuses = server.query("SELECT id, status FROM versions WHERE number > 0")
        assert [s for _, s in statuses] == ["interrupted"]
        rows = server.query("SELECT outcome FROM attempts WHERE version_id = ?", statuses[0][0])
        assert rows == [("ambiguous",)]
        assert server.query("SELECT count(*) FROM idempotency") == [(0,)], "the key is released"
    finally:
        server.stop()


def test_sigterm_lets_an_edit_in_flight_finish(tmp_path: Path, emulator: str) -> None:
    plan = {"latency_ms": 1500}
    httpx.put(f"{emulator}/_emulator/config", json={"endpoints": {"gemini": plan}}).raise_for_status()
    server = ServerProcess(tmp_path, emulator, EDITGATE_DRAIN_S="60")
    try:
        thread, out = _in_flight(server, emulator, "finish-key")
        server.proc.send_signal(signal.SIGTERM)
        thread.join(timeout=60)
        assert out["response"].status_code == 200, out
        assert server.proc.wait(timeout=30) is not None
        assert [s for (s,) in server.query("SELECT status FROM versions WHERE number > 0")] == ["succeeded"]
    finally:
        httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()
        server.stop()


def test_a_crash_during_a_fallbacks_call_ledgers_the_fallback(tmp_path: Path, emulator: str) -> None:
    """openai-images fails fast, gemini (the pro-masked rule's fallback) hangs; kill -9 then restart:
    the ambiguous row names the provider that was being called, not the first candidate."""
    plan = {"images": {"faults": {"unavailable": 1.0}}, "gemini": {"faults": {"hang": 1.0}, "hang_s": 60}}
    httpx.put(f"{emulator}/_emulator/config", json={"endpoints": plan}).raise_for_status()
    server = ServerProcess(tmp_path, emulator, **SHORT_LEASE)
    try:
        files = [("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))]
        data = {"prompt": "replace the table with sand", "tier": "pro"}
        thread = threading.Thread(
            target=lambda: _quietly(lambda: httpx.post(f"{server.url}/v1/edits", files=files, data=data, timeout=120)),
            daemon=True,
        )
        thread.start()
        wait_for(lambda: _calls(emulator) >= 1, 30, "the fallback's call")
        ((version_id,),) = server.query("SELECT id FROM versions WHERE number > 0")
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)
    finally:
        server.stop()
        httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()
    server = ServerProcess(tmp_path, emulator, **SHORT_LEASE)
    try:
        wait_for(
            lambda: server.query("SELECT status FROM versions WHERE id = ?", version_id) == [("interrupted",)],
            30, "the interrupted state",
        )  # fmt: skip
        rows = server.query("SELECT provider, outcome, estimated_usd FROM attempts WHERE version_id = ?", version_id)
        assert [(p, o) for p, o, _ in rows] == [("gemini", "ambiguous")]
        assert rows[0][2] is not None and rows[0][2] > 0
    finally:
        server.stop()


def _quietly(call: Callable[[], object]) -> None:
    with contextlib.suppress(httpx.TransportError):  # the server was killed under it
        call()
