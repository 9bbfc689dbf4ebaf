"""Circuit breakers and the route deadline: a probe the deadline cuts is a failure (never a lockout),
the cut attempt is in the trace and the ledger as ambiguous, and a reload re-tunes existing breakers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml

from policies.capabilities import Capabilities
from policies.model import BreakerSettings, Candidate, RouteDecision
from providers.base import EditJob, ProviderResult
from router.breaker import Breakers
from router.executor import ExecutionFailed, Resources, execute
from router.storage.db import database_url, make_engine
from router.storage.store import Store
from tests.conftest import cloud_settings, fixture_bytes

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")
DEFAULT = yaml.safe_load(resources.files("policies").joinpath("default.yaml").read_text())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Hangs:
    """A provider that never answers: only the route deadline ends its call."""

    name = "slow"
    capabilities = Capabilities(native_mask=True)

    async def edit(self, job: EditJob) -> ProviderResult:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


def _decision(*names: str) -> RouteDecision:
    return RouteDecision(
        rule="r", policy_version="v", candidates=[Candidate(provider=n, model="m", estimate_usd=0.25) for n in names]
    )


def test_a_half_open_probe_cut_by_the_deadline_counts_as_a_failure_and_a_new_probe_follows() -> None:
    clock = Clock()
    breakers = Breakers(BreakerSettings(consecutive_failures=1, cool_down_s=10), clock=clock)
    breaker = breakers.get("slow")
    breaker.record(False)
    clock.now += 10
    assert breaker.state == "half_open" and breaker.allows()

    async def run() -> ExecutionFailed:
        with pytest.raises(ExecutionFailed) as failed:
            await execute(_decision("slow"), {"slow": Hangs()}, lambda c: None, 0.05, Resources(breakers))  # type: ignore[arg-type,return-value]
        return failed.value

    failed = asyncio.run(run())
    assert failed.error.code == "deadline_exceeded"
    assert [(a.provider, a.outcome) for a in failed.attempts] == [("slow", "ambiguous")]
    assert breaker.state == "open", "the cut probe is a failure: the breaker opens again"
    clock.now += 10
    assert breaker.allows(), "after the cool-down a new probe may go"


def test_a_call_cancelled_while_queued_releases_the_probe_without_a_verdict() -> None:
    clock = Clock()
    breakers = Breakers(BreakerSettings(consecutive_failures=1, cool_down_s=10), clock=clock)
    breaker = breakers.get("slow")
    breaker.record(False)
    clock.now += 10
    resources = Resources(breakers, max_concurrency={"slow": 1})

    async def run() -> None:
        await resources.limits.acquire("slow", "holder")  # the only slot is taken: the probe queues
        with pytest.raises(ExecutionFailed) as failed:
            await execute(_decision("slow"), {"slow": Hangs()}, lambda c: None, 0.05, resources)  # type: ignore[arg-type,return-value]
        assert failed.value.attempts == [] and failed.value.error.code == "deadline_exceeded"

    asyncio.run(run())
    assert breaker.state == "half_open" and breaker.allows(), "no call was made: nothing to judge, probe released"


def test_new_breaker_settings_apply_to_existing_breakers() -> None:
    clock = Clock()
    breakers = Breakers(BreakerSettings(consecutive_failures=5, window=20, cool_down_s=600), clock=clock)
    breaker = breakers.get("p")
    for _ in range(30):
        breaker.record(True)
    breakers.configure(BreakerSettings(consecutive_failures=1, window=4, min_calls=4, cool_down_s=5))
    breaker.record(False)
    assert breaker.state == "open", "the new threshold applies to a breaker that already existed"
    clock.now += 5
    assert breaker.state == "half_open", "and the new cool-down"
    breaker.record(True)
    for ok in (True, False, False):
        breaker.record(ok)
    assert breaker.state == "open", "the new window: 2 failures in the last 4 calls is the 50% error rate"


# --- over HTTP, against the emulator -------------------------------------------------------------


def policy_file(tmp_path: Path, name: str = "policy.yaml", **changes: Any) -> Path:
    data = json.loads(json.dumps(DEFAULT))
    data.update(changes)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def with_deadline(seconds: float) -> list[dict]:
    return [{**r, "deadline_s": seconds} if r["name"] == "pro-masked" else r for r in DEFAULT["rules"]]


def cloud_server(make_server: Callable[..., str], emulator: str, **overrides: Any) -> str:
    return make_server(**cloud_settings(emulator), **overrides)


def pro_edit(url: str) -> httpx.Response:
    files = [("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))]
    data = {"prompt": "replace the table with sand", "tier": "pro"}
    return httpx.post(f"{url}/v1/edits", files=files, data=data, timeout=60)


def breaker_state(url: str, provider: str) -> str:
    return httpx.get(f"{url}/v1/policy").json()["breakers"].get(provider, "closed")


def wait_until(predicate: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.1)


def test_deadline_cancelled_half_open_probe_does_not_lock_the_provider_out(
    make_server: Callable[..., str], emulator: str, faults: Callable[..., None], tmp_path: Path
) -> None:
    path = policy_file(tmp_path, breaker={"consecutive_failures": 1, "cool_down_s": 1}, rules=with_deadline(2))
    url = cloud_server(make_server, emulator, policy_file=path)
    faults("images", unavailable=1.0, max_faults=1)
    assert pro_edit(url).json()["provider"] == "gemini", "openai-images failed once: its breaker opens"
    wait_until(lambda: breaker_state(url, "openai-images") == "half_open")
    faults("images", hang=1.0, hang_s=20, max_faults=1)
    cut = pro_edit(url)
    assert cut.status_code == 504 and cut.json()["error"]["code"] == "deadline_exceeded", cut.text
    faults("images")
    wait_until(lambda: breaker_state(url, "openai-images") == "half_open")
    again = pro_edit(url).json()
    assert again.get("provider") == "openai-images", f"a new probe went out and closed the breaker: {again}"
    assert breaker_state(url, "openai-images") == "closed"


def test_a_deadline_cut_attempt_is_ambiguous_in_the_trace_and_the_ledger_and_counts_for_budgets(
    make_server: Callable[..., str], emulator: str, faults: Callable[..., None], tmp_path: Path
) -> None:
    path = policy_file(tmp_path, rules=with_deadline(1.5), budgets={"tenants": {"dev": 100.0}})
    data_dir = tmp_path / "data"
    url = cloud_server(make_server, emulator, policy_file=path, data_dir=data_dir)
    files = [("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))]
    explained = httpx.post(f"{url}/v1/route/explain", files=files,
                           data={"prompt": "replace the table with sand", "tier": "pro"}).json()  # fmt: skip
    estimate = explained["decision"]["candidates"][0]["estimate_usd"]
    assert explained["decision"]["candidates"][0]["provider"] == "openai-images" and estimate > 0
    faults("images", hang=1.0, hang_s=20, max_faults=1)
    cut = pro_edit(url)
    assert cut.status_code == 504, cut.text
    error = cut.json()["error"]
    record = httpx.get(f"{url}/v1/edits/{error['edit_id']}").json()
    assert [(a["provider"], a["outcome"]) for a in record["route"]["attempts"]] == [("openai-images", "ambiguous")]

    async def ledger() -> list:
        store = Store(make_engine(database_url(None, data_dir)))
        try:
            return list(await store.attempts_for("dev"))
        finally:
            await store.engine.dispose()

    (row,) = asyncio.run(ledger())
    assert (row.provider, row.outcome, row.version_id) == ("openai-images", "ambiguous", error["edit_id"])
    assert row.estimated_usd == pytest.approx(estimate) and row.actual_usd is None
    again = httpx.post(f"{url}/v1/route/explain", files=files,
                       data={"prompt": "replace the table with sand", "tier": "pro"}).json()  # fmt: skip
    assert again["decision"]["budget"]["spent_usd"] == pytest.approx(estimate, rel=1e-4), "it may have billed"


def test_a_policy_reload_retunes_the_running_breakers(
    make_server: Callable[..., str], emulator: str, faults: Callable[..., None], tmp_path: Path
) -> None:
    path = policy_file(tmp_path)
    url = cloud_server(make_server, emulator, policy_file=path)
    assert pro_edit(url).json()["provider"] == "openai-images"  # its breaker exists now, with the defaults
    policy_file(tmp_path, version="strict", breaker={"consecutive_failures": 1, "cool_down_s": 600})
    wait_until(lambda: httpx.get(f"{url}/v1/policy").json()["version"] == "strict")
    faults("images", unavailable=1.0, max_faults=1)
    assert pro_edit(url).json()["provider"] == "gemini"
    assert breaker_state(url, "openai-images") == "open", "one failure trips it under the reloaded settings"


def test_an_open_breaker_says_when_it_will_half_open() -> None:
    clock = Clock()
    breakers = Breakers(BreakerSettings(consecutive_failures=1, cool_down_s=10), clock=clock)
    assert breakers.details() == {}
    breakers.get("gemini").record(False)
    assert breakers.details()["gemini"] == {"state": "open", "half_open_in_s": 10.0}
    clock.now += 4
    assert breakers.details()["gemini"]["half_open_in_s"] == 6.0
    clock.now += 6
    assert breakers.details()["gemini"] == {"state": "half_open", "half_open_in_s": None}
    breakers.get("openai-images").trip(for_s=3600)  # a per-day quota holds it longer than the cool-down
    assert breakers.details()["openai-images"]["half_open_in_s"] == 3600.0
