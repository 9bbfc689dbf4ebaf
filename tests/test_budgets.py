"""Budgets count what the tenant spends: a free edit never exceeds one, and the operator's shadow
traffic is counted and reported apart from the tenant's spend."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import httpx
import pytest
import yaml

from policies import Features, decide
from router.storage.db import database_url, make_engine, migrate
from router.storage.store import Spend, Store
from tests.conftest import fixture_bytes
from tests.test_routing_policy import CAPS, PLAIN, _with

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")
DEFAULT = yaml.safe_load(resources.files("policies").joinpath("default.yaml").read_text())
ESTIMATES = {"gemini": 0.07, "openai-images": 0.14, "openai-responses": 0.14, "local": 0.0}
REMOVAL = {**PLAIN, "has_mask": True, "removal": True, "tenant": "acme"}  # free-removal: local, then gemini


@pytest.mark.parametrize("spent", [1.0, 2.5])
def test_reject_still_serves_a_free_edit_once_the_budget_is_used(spent: float) -> None:
    policy = _with(budgets={"tenants": {"acme": 1.0}, "on_exceed": "reject"})
    d = decide(Features(**REMOVAL), policy, forced_provider=None, capabilities=CAPS, estimates=ESTIMATES,
               spent_today_usd=spent)  # fmt: skip
    assert d.refusal is None and d.budget is not None and d.budget.action == "within"
    assert [c.provider for c in d.candidates] == ["local"], "a paid fallback would spend past the budget"


def test_reject_refuses_a_paid_edit_over_the_budget_and_keeps_fallbacks_that_fit() -> None:
    policy = _with(budgets={"tenants": {"acme": 1.0}, "on_exceed": "reject"})
    paid = {**REMOVAL, "removal": False}  # standard-tier: gemini, then openai-images and local
    over = decide(Features(**paid), policy, forced_provider=None, capabilities=CAPS, estimates=ESTIMATES,
                  spent_today_usd=1.0)  # fmt: skip
    assert over.refusal is not None and over.refusal.status == 402
    within = decide(Features(**REMOVAL), policy, forced_provider=None, capabilities=CAPS, estimates=ESTIMATES,
                    spent_today_usd=0.5)  # fmt: skip
    assert [c.provider for c in within.candidates] == ["local", "gemini"], "under the budget nothing changes"


def test_shadow_traffic_is_counted_apart_from_the_tenants_spend(make_server: Callable[..., str], emulator: str,
                                                               tmp_path: Path) -> None:  # fmt: skip
    policy = json.loads(json.dumps(DEFAULT))
    policy["shadows"] = [{"name": "shadow-oai", "provider": "openai-images", "fraction": 1.0}]
    policy["budgets"] = {"tenants": {"dev": 0.1}, "on_exceed": "reject"}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(policy))
    url = make_server(policy_file=tmp_path / "p.yaml", openai_api_key="k", openai_base_url=f"{emulator}/v1",
                      gemini_api_key="g", gemini_base_url=emulator)  # fmt: skip
    files = [("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))]
    with httpx.Client(base_url=url, timeout=60) as c:
        free = c.post("/v1/edits", files=files, data={"prompt": "remove the table"})
        assert free.status_code == 200 and free.json()["provider"] == "local", free.text
        deadline = time.monotonic() + 20
        while (r := c.get("/v1/experiments/shadow-oai/report")).status_code != 200 or len(r.json()["arms"]) < 2:
            assert time.monotonic() < deadline, "the shadow was not recorded"
            time.sleep(0.1)
        shadow_cost = {a["arm"]: a for a in r.json()["arms"]}["openai-images"]["cost_total_usd"]
        assert shadow_cost > 0.1, "the shadow alone is past the tenant's budget"
        explained = c.post("/v1/route/explain", files=files, data={"prompt": "replace the table with sand"}).json()
        budget = explained["decision"]["budget"]
        assert budget["spent_usd"] == 0.0, "the operator's experiment is not the tenant's spend"
        assert budget["shadow_usd"] == pytest.approx(shadow_cost, rel=1e-4), "but it is counted and reported"
        assert budget["action"] == "within"
        paid = c.post("/v1/edits", files=files, data={"prompt": "replace the table with sand"})
        assert paid.status_code == 200 and paid.json()["provider"] == "gemini", paid.text


def test_spend_counts_what_may_have_been_billed_and_keeps_shadows_apart(db_url: str | None, tmp_path: Path) -> None:
    async def run() -> Spend:
        store = Store(make_engine(database_url(db_url, tmp_path)))
        try:
            await migrate(store.engine)
            tenant = await store.ensure_tenant("spender")
            sid = await store.create_session(tenant, None, {})
            primary = await store.add_version(tenant, sid, status="succeeded")
            shadow = await store.add_version(tenant, sid, status="succeeded", shadow_of=primary.number)
            row = {"tenant_id": tenant, "session_id": sid, "model": "m", "provider_ms": 1.0, "comparison": False}
            await store.add_attempts([
                {**row, "version_id": primary.id, "provider": "a", "outcome": "ok", "estimated_usd": 0.09,
                 "actual_usd": 0.1},
                {**row, "version_id": primary.id, "provider": "b", "outcome": "provider_unavailable",
                 "estimated_usd": 0.2},
                {**row, "version_id": primary.id, "provider": "c", "outcome": "ambiguous", "estimated_usd": 0.3},
                {**row, "version_id": shadow.id, "provider": "d", "outcome": "ok", "actual_usd": 0.5,
                 "comparison": True},
            ])  # fmt: skip
            return await store.spent_since(tenant, 0.0)
        finally:
            await store.engine.dispose()

    spend = asyncio.run(run())
    assert spend.tenant_usd == pytest.approx(0.4), "the paid and the ambiguous call; the failed one was not billed"
    assert spend.shadow_usd == pytest.approx(0.5)
