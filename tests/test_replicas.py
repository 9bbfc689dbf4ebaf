"""Two replicas on one PostgreSQL and one Redis share what one account allows: a provider's
``max_concurrency`` and per-minute rates hold across both, and a tenant's budget is not overspent by
concurrent edits on either. Each replica is a whole app on its own socket (as ``editgate serve`` runs),
with its own event loop; they share only the database, Redis and the blob directory."""

from __future__ import annotations

import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import cloud_settings, fixture_bytes
from tests.lifecycle_server import ServerProcess, wait_for
from tests.test_breakers import DEFAULT, policy_file

COFFEE = fixture_bytes("coffee.png")
REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_prefix() -> str:
    """Keys of their own per test: tests share the machine's Redis."""
    return f"editgate-test-{uuid.uuid4().hex[:10]}"


def replicas(make_server: Callable[..., str], emulator: str, new_database: Callable[[], str], tmp_path: Path,
             policy: Path, redis_url: str | None = REDIS_URL, **extra: Any) -> list[str]:  # fmt: skip
    """Two editgates on one fresh PostgreSQL database, one Redis key space and one blob directory."""
    shared = replica_settings(emulator, new_database, tmp_path, policy, redis_url, **extra)
    return [make_server(**shared), make_server(**shared)]


def replica_settings(emulator: str, new_database: Callable[[], str], tmp_path: Path, policy: Path,
                     redis_url: str | None = REDIS_URL, **extra: Any) -> dict[str, Any]:  # fmt: skip
    """What replicas share: a fresh PostgreSQL database, one Redis key space, one blob directory, the policy."""
    return dict(database_url=new_database(), redis_url=redis_url, redis_prefix=redis_prefix(),
                data_dir=tmp_path / "data", policy_file=policy, **cloud_settings(emulator), **extra)  # fmt: skip


def gemini_with(**limits: Any) -> dict[str, Any]:
    return {**DEFAULT["providers"], "gemini": {**DEFAULT["providers"]["gemini"], **limits}}


def edit(url: str, **data: str) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=120) as api:
        return api.post("/v1/edits", files=[("image", ("c.png", COFFEE))],
                        data={"prompt": "a sandy beach", "provider": "gemini", **data})  # fmt: skip


def spread(urls: list[str], count: int, **data: str) -> list[httpx.Response]:
    """``count`` edits at once, alternating between the replicas."""
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda i: edit(urls[i % len(urls)], **data), range(count)))


def emulator_stats(emulator: str) -> dict[str, Any]:
    return httpx.get(f"{emulator}/_emulator/stats").json()


@pytest.fixture()
def emulator() -> Iterator[str]:
    """An emulator of each test's own (not the session's): its peak counts see only this test's calls, as
    servers of earlier tests live until the session ends and may still be calling the shared one."""
    from providers.emulator import create_emulator_app
    from router.threaded import serve_in_thread

    with serve_in_thread(create_emulator_app()) as url:
        yield url


@pytest.fixture()
def slow_gemini(emulator: str) -> Callable[[float], None]:
    """Gemini answers after ``latency_ms``, so calls overlap; the plan (and the emulator's peak count)
    is reset after the test."""

    def slow(latency_ms: float) -> None:
        plan = {"endpoints": {"gemini": {"latency_ms": latency_ms}}}
        httpx.put(f"{emulator}/_emulator/config", json=plan).raise_for_status()

    yield slow  # type: ignore[misc]
    httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()


def test_a_provider_limit_of_four_holds_across_two_replicas(new_database: Callable[[], str],
                                                             make_server: Callable[..., str], emulator: str,
                                                             tmp_path: Path,
                                                             slow_gemini: Callable[[float], None]) -> None:  # fmt: skip
    urls = replicas(make_server, emulator, new_database, tmp_path,
                    policy_file(tmp_path, providers=gemini_with(max_concurrency=4)))  # fmt: skip
    slow_gemini(400)
    answers = spread(urls, 16)
    assert [r.status_code for r in answers] == [200] * 16, [r.text for r in answers if r.status_code != 200]
    stats = emulator_stats(emulator)
    assert stats["requests"]["gemini"] == 16
    assert stats["peak_in_flight"]["gemini"] == 4, "four at once, never more, though each replica alone allows 4"
    waited = [r.json()["latency_ms"]["queueing"] for r in answers]
    assert sum(w > 200 for w in waited) >= 8, f"at least 12 of 16 waited for a slot, in latency_ms.queueing: {waited}"


def gemini_estimate(make_server: Callable[..., str], emulator: str) -> float:
    """What routing estimates for one test edit on gemini (asked of an editgate without a budget)."""
    url = make_server(**cloud_settings(emulator))
    explained = httpx.post(f"{url}/v1/route/explain", files=[("image", ("c.png", COFFEE))],
                           data={"prompt": "a sandy beach", "provider": "gemini"}, timeout=60)  # fmt: skip
    explained.raise_for_status()
    return explained.json()["decision"]["candidates"][0]["estimate_usd"]


def test_concurrent_edits_on_two_replicas_cannot_overspend_a_budget(
    new_database: Callable[[], str], make_server: Callable[..., str], emulator: str, tmp_path: Path,
    slow_gemini: Callable[[float], None],
) -> None:  # fmt: skip
    """Each edit alone fits the budget when it reads the ledger (nothing is billed yet); their holds
    do not fit together: ten pass, ten are refused with the 402."""
    estimate = gemini_estimate(make_server, emulator)
    assert estimate > 0
    budgets = {"tenants": {"dev": round(estimate * 10.5, 6)}, "on_exceed": "reject"}
    urls = replicas(make_server, emulator, new_database, tmp_path, policy_file(tmp_path, budgets=budgets))
    slow_gemini(1500)
    answers = spread(urls, 20)
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * 10 + [402] * 10, [r.text for r in answers if r.status_code not in (200, 402)]
    refused = [r.json()["error"] for r in answers if r.status_code == 402]
    assert {e["code"] for e in refused} == {"budget_exceeded"}
    billed = [r.json()["cost"]["actual_usd"] for r in answers if r.status_code == 200]
    assert sum(billed) <= estimate * 10.5, "the ledger's spend is within the budget"


@pytest.fixture()
def own_redis(tmp_path: Path) -> Iterator[Callable[[], None]]:
    """A Redis of this test's own (the machine's must keep running): yields its restart; stopped by
    the test with ``own_redis.stop()``."""
    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(lambda: _answers(port), 20, "redis to start")

    def stop() -> None:
        procs[-1].kill()
        procs[-1].wait()

    start()
    start.url = f"redis://127.0.0.1:{port}/0"  # type: ignore[attr-defined]
    start.stop = stop  # type: ignore[attr-defined]
    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _answers(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(url: str) -> httpx.Response:
    return httpx.get(f"{url}/readyz", timeout=30)


def redis_up_metric(url: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith('editgate_dependency_up{dependency="redis"}'):
            return float(line.split()[-1])
    raise AssertionError("no editgate_dependency_up for redis")


def test_redis_stopped_during_a_load_local_limits_take_over_then_it_recovers(
    new_database: Callable[[], str], make_server: Callable[..., str], emulator: str, tmp_path: Path,
    slow_gemini: Callable[[float], None], own_redis: Callable[[], None],
) -> None:  # fmt: skip
    urls = replicas(make_server, emulator, new_database, tmp_path,
                    policy_file(tmp_path, providers=gemini_with(max_concurrency=4)),
                    redis_url=own_redis.url)  # type: ignore[attr-defined]  # fmt: skip
    assert [ready(u).json()["status"] for u in urls] == ["ok", "ok"]
    assert [redis_up_metric(u) for u in urls] == [1.0, 1.0]
    slow_gemini(300)
    with ThreadPoolExecutor(1) as pool:
        load = pool.submit(spread, urls, 16)
        wait_for(lambda: emulator_stats(emulator)["requests"]["gemini"] >= 2, 60, "the load to reach gemini")
        own_redis.stop()  # type: ignore[attr-defined]
        answers = load.result()
    assert [r.status_code for r in answers] == [200] * 16, [r.text for r in answers if r.status_code != 200]
    after = spread(urls, 4)  # Redis is gone: each replica's own limits
    assert [r.status_code for r in after] == [200] * 4, [r.text for r in after if r.status_code != 200]
    for url in urls:
        readyz = ready(url)
        assert readyz.status_code == 200 and readyz.json()["status"] == "degraded", readyz.text
        assert "unreachable" in readyz.json()["redis"]
        assert redis_up_metric(url) == 0.0
    own_redis()  # Redis is back (empty, as after a restart without persistence)
    for url in urls:
        wait_for(lambda u=url: ready(u).json()["status"] == "ok", 60, "readyz to say ok again")
        assert redis_up_metric(url) == 1.0
    slow_gemini(300)  # counts from here
    again = spread(urls, 12)
    assert [r.status_code for r in again] == [200] * 12
    assert emulator_stats(emulator)["peak_in_flight"]["gemini"] == 4, "shared again: four across both"


def sse_events(url: str, path: str, **headers: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, event, data) of a whole event stream."""
    import json

    events, current = [], {}
    with httpx.stream("GET", f"{url}{path}", headers=headers, timeout=60) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if not line:
                if "event" in current:
                    events.append((current.get("id", ""), current["event"], json.loads(current["data"])))
                current = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                current[name] = value
    return events


def test_an_edits_events_are_read_live_from_the_replica_that_did_not_run_it(
    new_database: Callable[[], str], make_server: Callable[..., str], emulator: str, tmp_path: Path,
    slow_gemini: Callable[[float], None],
) -> None:  # fmt: skip
    runs_it, other = replicas(make_server, emulator, new_database, tmp_path, policy_file(tmp_path))
    slow_gemini(1500)
    with httpx.stream("POST", f"{runs_it}/v1/edits", files=[("image", ("c.png", COFFEE))],
                      data={"prompt": "a sandy beach", "provider": "gemini"},
                      headers={"Accept": "text/event-stream"}, timeout=60) as started:  # fmt: skip
        edit_id = started.headers["x-editgate-edit-id"]
        live = sse_events(other, f"/v1/edits/{edit_id}/events")  # while the other replica runs it
        list(started.iter_lines())
    types = [t for _, t, _ in live]
    assert types[0] == "queued" and "routed" in types and "attempt" in types and types[-1] == "completed", types
    assert [i for i, _, _ in live] == [str(n) for n in range(1, len(live) + 1)], "ids count from 1, as on the runner"
    assert live[-1][2]["id"] == edit_id and live[-1][2]["status"] == "succeeded"
    resumed = sse_events(other, f"/v1/edits/{edit_id}/events", **{"Last-Event-ID": "2"})
    assert [(i, t) for i, t, _ in resumed] == [(i, t) for i, t, _ in live[2:]], "a resume replays from Redis"


def test_an_edit_that_finishes_during_a_drain_still_reaches_the_other_replicas_readers(
    new_database: Callable[[], str], make_server: Callable[..., str], emulator: str, tmp_path: Path,
    slow_gemini: Callable[[float], None],
) -> None:  # fmt: skip
    """The replica that runs a queued edit shuts down (SIGTERM) while the edit runs: the drain lets it finish,
    and its last events must still reach Redis, or a client following it on another replica waits for an end
    that never comes (until the stream expires)."""
    from router.app import create_app
    from router.settings import Limits, Settings
    from router.threaded import serve_in_thread
    from tests.conftest import TEST_LIMITS

    shared = replica_settings(emulator, new_database, tmp_path, policy_file(tmp_path))
    slow_gemini(1500)
    with serve_in_thread(create_app(Settings(limits=Limits(**TEST_LIMITS), drain_s=20, **shared))) as runs_it:
        accepted = edit(runs_it, **{"async": "true"})
        assert accepted.status_code == 202, accepted.text
        edit_id = accepted.json()["id"]
        wait_for(
            lambda: httpx.get(f"{runs_it}/v1/edits/{edit_id}", timeout=10).json()["status"] == "running",
            20,
            "the edit to run",
        )
        other = make_server(**shared)  # started after the claim: the edit is the runner's
    # the runner has shut down: its drain waited for the edit, which finished meanwhile
    assert httpx.get(f"{other}/v1/edits/{edit_id}", timeout=10).json()["status"] == "succeeded"
    followed: list[list[tuple[str, str, dict[str, Any]]]] = []
    reader = threading.Thread(target=lambda: followed.append(sse_events(other, f"/v1/edits/{edit_id}/events")),
                              daemon=True)  # fmt: skip
    reader.start()
    reader.join(timeout=20)
    assert followed, "the stream never ended: the edit's last events did not reach Redis"
    assert followed[0][-1][1] == "completed", followed


def breaker_state(url: str, provider: str) -> float:
    """``editgate_breaker_state`` of ``provider`` on this replica (0 closed, 2 open; 0 if never used)."""
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith(f'editgate_breaker_state{{provider="{provider}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_breakers_are_per_replica_as_envoys_outlier_detection_is_per_host(
    new_database: Callable[[], str], make_server: Callable[..., str], emulator: str, tmp_path: Path,
    faults: Callable[..., None],
) -> None:  # fmt: skip
    """A replica that saw gemini fail opens its own breaker; the other, which saw nothing wrong, keeps
    calling it (the README's "Circuit breakers across replicas" says why)."""
    policy = policy_file(tmp_path, breaker={"consecutive_failures": 2, "cool_down_s": 600})
    failing, healthy = replicas(make_server, emulator, new_database, tmp_path, policy)
    faults("gemini", server_error=1.0)
    assert edit(failing).status_code == 502
    assert breaker_state(failing, "gemini") == 2.0, "two failures in a row opened it here"
    assert breaker_state(healthy, "gemini") == 0.0, "the other replica saw no failure: still closed"
    faults("gemini")  # the provider recovers
    assert edit(healthy).status_code == 200, "served by gemini on the replica whose breaker is closed"
    refused = edit(failing)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "providers_unavailable", refused.text


def test_a_replica_killed_mid_edit_is_reaped_by_the_other(
    new_database: Callable[[], str], emulator: str, faults: Callable[..., None], tmp_path: Path
) -> None:
    """kill -9 of the replica running an edit: the other replica finds its lease expired and ends the edit
    `interrupted`, with the call in the ledger as possibly billed, and it can be retried from there."""
    faults("gemini", hang=1.0, hang_s=60)
    shared = {"DATABASE_URL": new_database(), "REDIS_URL": REDIS_URL, "EDITGATE_REDIS_PREFIX": redis_prefix(),
              "EDITGATE_LEASE_S": "2", "EDITGATE_RECOVERY_INTERVAL_S": "0.5"}  # fmt: skip
    pool = ThreadPoolExecutor(1)
    doomed = ServerProcess(tmp_path, emulator, **shared)  # one blob directory, as replicas share one store
    survivor = ServerProcess(tmp_path, emulator, **shared)
    try:
        # a synchronous edit runs where it was sent (a queued one could be claimed by either replica)
        pool.submit(lambda: edit(doomed.url))

        def running() -> list[dict[str, Any]]:
            return list(httpx.get(f"{survivor.url}/v1/edits", params={"status": "running"}, timeout=10).json()["data"])

        wait_for(lambda: bool(running()), 60, "the edit to run on the doomed replica")
        edit_id = running()[0]["id"]

        def status() -> str:
            return str(httpx.get(f"{survivor.url}/v1/edits/{edit_id}", timeout=10).json()["status"])

        doomed.crash()
        took = wait_for(lambda: status() == "interrupted", 60, "the survivor to reap the edit")
        print(f"reaped {took:.1f} s after the kill (lease 2 s)")
        record = httpx.get(f"{survivor.url}/v1/edits/{edit_id}", timeout=10).json()
        assert record["error"]["code"] == "interrupted"
        faults("gemini")  # the provider answers again: the survivor retries it
        retried = httpx.post(f"{survivor.url}/v1/sessions/{record['session_id']}/versions/{record['version']}/retry",
                             timeout=60)  # fmt: skip
        assert retried.status_code == 200 and retried.json()["status"] == "succeeded", retried.text
    finally:
        doomed.stop()
        survivor.stop()
        pool.shutdown(wait=True)
