"""Async edits: ``Prefer: respond-async`` (or ``"async": true``) answers 202 with the queued record and
``Location``; ``GET ?wait=`` long-polls to the terminal state; cancel stops a queued or running edit;
a queued edit accepted before a restart runs after it; a sync caller that disconnects still gets its
edit finished and stored."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import cloud_settings, fixture_bytes
from tests.lifecycle_server import ServerProcess, wait_for
from tests.test_breakers import DEFAULT, policy_file

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")
FILES = [("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))]


def _accept(api: httpx.Client, **data: str) -> httpx.Response:
    headers = {} if data.pop("json_async", None) else {"Prefer": "respond-async"}
    return api.post("/v1/edits", files=FILES, data={"prompt": "a sandy beach", "provider": "gemini", **data},
                    headers=headers)  # fmt: skip


def test_prefer_respond_async_answers_202_then_wait_returns_the_result(cloud: httpx.Client) -> None:
    r = _accept(cloud)
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/edits/{r.json()['id']}"
    assert r.json()["status"] == "queued" and r.json()["queue_position"] >= 1
    done = cloud.get(r.headers["location"], params={"wait": 30}).json()
    assert done["status"] == "succeeded" and done["provider"] == "gemini" and done["image"]["sha256"]
    assert cloud.get(f"/v1/files/{done['image']['sha256']}").status_code == 200


def test_async_field_in_json(cloud: httpx.Client) -> None:
    import base64

    body = {"prompt": "a sandy beach", "provider": "gemini", "async": True, "image": base64.b64encode(COFFEE).decode()}
    r = cloud.post("/v1/edits", json=body)
    assert r.status_code == 202, r.text
    assert cloud.get(f"/v1/edits/{r.json()['id']}", params={"wait": 30}).json()["status"] == "succeeded"


def test_cancel_a_running_edit_records_the_ambiguous_call(cloud: httpx.Client, faults: Callable[..., None],
                                                          stack_ledger: Callable[[str], list]) -> None:  # fmt: skip
    faults("gemini", hang=1.0, hang_s=60)
    r = _accept(cloud)
    edit_id, session_id = r.json()["id"], r.json()["session_id"]
    wait_for(lambda: cloud.get(f"/v1/edits/{edit_id}").json()["status"] == "running", 30, "running")
    time.sleep(0.3)  # the provider call is in flight
    canceled = cloud.post(f"/v1/edits/{edit_id}/cancel")
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    assert [row.outcome for row in stack_ledger(session_id)] == ["ambiguous"]
    assert cloud.post(f"/v1/edits/{edit_id}/cancel").status_code == 409


def test_queued_edits_survive_a_restart(tmp_path: Path, emulator: str) -> None:
    server = ServerProcess(tmp_path, emulator, EDITGATE_QUEUE_CONCURRENCY="1")
    try:
        httpx.put(f"{emulator}/_emulator/config", json={"endpoints": {"gemini": {"latency_ms": 3000}}})
        with httpx.Client(base_url=server.url, timeout=60) as api:
            ids = [_accept(api).json()["id"] for _ in range(3)]
            positions = [api.get(f"/v1/edits/{i}").json().get("queue_position") for i in ids]
        assert positions[1:] == [1, 2] or positions == [1, 2, 3] or positions[2] == 2, positions
        server.proc.terminate()  # drains the running one; the queued ones stay queued in the database
        server.proc.wait(timeout=60)
        left = [s for (s,) in server.query("SELECT status FROM versions WHERE number > 0")]
        assert "running" not in left and "queued" in left
    finally:
        server.stop()
    httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()
    server = ServerProcess(tmp_path, emulator)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as api:
            for edit_id in ids:
                assert api.get(f"/v1/edits/{edit_id}", params={"wait": 30}).json()["status"] == "succeeded"
    finally:
        server.stop()


def test_cancel_a_queued_edit_makes_no_call(tmp_path: Path, emulator: str) -> None:
    server = ServerProcess(tmp_path, emulator, EDITGATE_QUEUE_CONCURRENCY="1")
    try:
        httpx.put(f"{emulator}/_emulator/config", json={"endpoints": {"gemini": {"latency_ms": 2000}}})
        with httpx.Client(base_url=server.url, timeout=60) as api:
            first, second = _accept(api).json()["id"], _accept(api).json()["id"]
            assert api.get(f"/v1/edits/{second}").json()["status"] == "queued"
            assert api.post(f"/v1/edits/{second}/cancel").json()["status"] == "canceled"
            assert api.get(f"/v1/edits/{first}", params={"wait": 30}).json()["status"] == "succeeded"
        assert server.query("SELECT count(*) FROM attempts WHERE version_id = ?", second) == [(0,)]
    finally:
        httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()
        server.stop()


def test_a_sync_caller_that_disconnects_still_gets_its_edit_by_repeating(cloud: httpx.Client, emulator: str) -> None:
    httpx.put(f"{emulator}/_emulator/config", json={"endpoints": {"gemini": {"latency_ms": 2000}}})
    try:
        key = {"Idempotency-Key": f"disconnect-{time.time()}"}
        data = {"prompt": "a sandy beach", "provider": "gemini"}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{cloud.base_url}/v1/edits", files=FILES, data=data, headers=key, timeout=0.8)
        again = wait_for(
            lambda: cloud.post("/v1/edits", files=FILES, data=data, headers=key).status_code == 200, 30, "the answer"
        )
        replay = cloud.post("/v1/edits", files=FILES, data=data, headers=key)
        assert replay.headers.get("idempotent-replayed") == "true" and replay.json()["status"] == "succeeded"
        assert again >= 0
    finally:
        httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()


def test_accept_latency(cloud: httpx.Client, emulator: str) -> None:
    """Measured, not asserted: the p50 of 50 accepts (printed with -s); all 50 then finish."""
    httpx.put(f"{emulator}/_emulator/config", json={"endpoints": {"gemini": {"latency_ms": 200}}})
    try:
        took, ids = [], []
        for _ in range(50):
            start = time.perf_counter()
            r = _accept(cloud)
            took.append(time.perf_counter() - start)
            assert r.status_code == 202
            ids.append(r.json()["id"])
        print(f"async accept p50: {statistics.median(took) * 1000:.1f} ms")
        statuses = {cloud.get(f"/v1/edits/{i}", params={"wait": 60}).json()["status"] for i in ids}
        assert statuses == {"succeeded"}
    finally:
        httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()


def test_cancelling_edits_while_the_worker_claims_them_leaves_none_running(
    cloud: httpx.Client, emulator: str, stack_ledger: Callable[[str], list]
) -> None:
    """Cancels racing the queue worker's claims: each edit ends (canceled or succeeded), none stays running,
    and a canceled edit whose provider call may have started has its ambiguous ledger row."""
    httpx.put(f"{emulator}/_emulator/config", json={"endpoints": {"gemini": {"latency_ms": 300}}})
    try:
        accepted = [_accept(cloud).json() for _ in range(30)]
        for edit in accepted:
            assert cloud.post(f"/v1/edits/{edit['id']}/cancel").status_code in (200, 409)
        ended = {e["id"]: cloud.get(f"/v1/edits/{e['id']}", params={"wait": 30}).json() for e in accepted}
        odd = [(e["status"], e.get("error")) for e in ended.values() if e["status"] not in ("canceled", "succeeded")]
        assert not odd, odd
        for edit in accepted:
            outcomes = [row.outcome for row in stack_ledger(edit["session_id"])]
            assert outcomes in ([], ["ambiguous"], ["ok"]), (ended[edit["id"]]["status"], outcomes)
    finally:
        httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()


def test_an_async_repeat_with_the_same_key_answers_the_current_record(cloud: httpx.Client, emulator: str) -> None:
    """While the edit is open the repeat is the same 202 with its current state; a sync repeat is still
    told to come back; once it finished, the repeat is the finished record."""
    httpx.put(f"{emulator}/_emulator/config", json={"endpoints": {"gemini": {"latency_ms": 2000}}})
    try:
        key = {"Idempotency-Key": f"async-repeat-{time.time()}"}
        first = cloud.post("/v1/edits", files=FILES, data={"prompt": "a sandy beach", "provider": "gemini"},
                           headers={**key, "Prefer": "respond-async"})  # fmt: skip
        assert first.status_code == 202, first.text
        again = cloud.post("/v1/edits", files=FILES, data={"prompt": "a sandy beach", "provider": "gemini"},
                           headers={**key, "Prefer": "respond-async"})  # fmt: skip
        assert again.status_code == 202, again.text
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.headers["location"] == first.headers["location"]
        assert again.json()["id"] == first.json()["id"] and again.json()["status"] in {"queued", "running"}
        sync = cloud.post("/v1/edits", files=FILES, data={"prompt": "a sandy beach", "provider": "gemini"},
                          headers=key)  # fmt: skip
        assert sync.status_code == 409 and sync.json()["error"]["code"] == "idempotency_in_progress"
        assert sync.headers.get("retry-after")
        assert cloud.get(first.headers["location"], params={"wait": 30}).json()["status"] == "succeeded"
        done = cloud.post("/v1/edits", files=FILES, data={"prompt": "a sandy beach", "provider": "gemini"},
                          headers={**key, "Prefer": "respond-async"})  # fmt: skip
        assert done.status_code == 200, done.text
        assert done.headers.get("idempotent-replayed") == "true"
        assert done.json()["id"] == first.json()["id"] and done.json()["status"] == "succeeded"
    finally:
        httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()


def test_queued_edits_wait_queued_for_their_providers_slot(
    make_server: Callable[..., str], emulator: str, tmp_path: Path
) -> None:  # fmt: skip
    """With gemini's ``max_concurrency: 1``, queued gemini edits wait in ``queued`` (with positions),
    not claimed ``running`` while they wait for the provider: one listing is one snapshot of all three."""
    providers = {**DEFAULT["providers"], "gemini": {**DEFAULT["providers"]["gemini"], "max_concurrency": 1}}
    url = make_server(**cloud_settings(emulator), policy_file=policy_file(tmp_path, providers=providers))
    httpx.put(f"{emulator}/_emulator/config", json={"endpoints": {"gemini": {"latency_ms": 1500}}})
    try:
        with httpx.Client(base_url=url, timeout=60) as api:
            ids = [_accept(api).json()["id"] for _ in range(3)]
            seen_positions: set[tuple[int, ...]] = set()
            while True:
                states = {e["id"]: e["status"] for e in api.get("/v1/edits", params={"limit": 10}).json()["data"]}
                assert sum(s == "running" for s in states.values()) <= 1, states
                if all(states[i] == "succeeded" for i in ids):
                    break
                queued = [i for i in ids if states[i] == "queued"]
                if len(queued) == 2:
                    seen_positions.add(tuple(api.get(f"/v1/edits/{i}").json().get("queue_position") for i in queued))
                time.sleep(0.05)
        assert (1, 2) in seen_positions, seen_positions
    finally:
        httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()
