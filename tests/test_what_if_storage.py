"""The rows what-if replays, on SQLite and PostgreSQL: ended, routed edits of the tenant in the window,
with what the ledger billed for each; never session sources, shadows, comparisons, open edits or edits
routed before their features were recorded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from router.storage.db import database_url, make_engine, migrate
from router.storage.replay import count_recorded, ledger_calls, recorded_edits
from router.storage.store import Store

T = TypeVar("T")
FEATURES = {"features": {"tier": "pro", "has_mask": True, "tenant": "a"}, "experiment_key": "k1",
            "provider": "openai-images", "image_sizes": [[512, 512]], "prompt_bytes": 27}  # fmt: skip


@pytest.fixture(scope="module")
def url(fresh_db: Callable[[], str | None], tmp_path_factory: pytest.TempPathFactory) -> str:
    found = database_url(fresh_db(), tmp_path_factory.mktemp("what-if-rows"))

    async def setup() -> None:
        engine = make_engine(found)
        await migrate(engine)
        await engine.dispose()

    asyncio.run(setup())
    return found


def with_store(url: str, work: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        store = Store(make_engine(url))
        try:
            return await work(store)
        finally:
            await store.engine.dispose()

    return asyncio.run(run())


def _attempt(tenant: str, version_id: str, outcome: str, estimated: float | None, actual: float | None,
             comparison: bool = False, provider: str = "openai-images") -> dict[str, Any]:  # fmt: skip
    return {"tenant_id": tenant, "version_id": version_id, "provider": provider, "model": "m", "rule": "pro-masked",
            "estimated_usd": estimated, "actual_usd": actual, "provider_ms": 900.0, "outcome": outcome,
            "comparison": comparison}  # fmt: skip


def test_only_ended_routed_edits_of_the_tenant_in_the_window_with_their_billed_cost(url: str) -> None:
    now = time.time()

    async def write(store: Store) -> dict[str, str]:
        ids: dict[str, str] = {}
        for tenant in ("a", "b"):
            await store.ensure_tenant(tenant)
        sid, _v0 = await store.start_session("a", None, {}, "0" * 64, 10, status="succeeded", result={})
        other, _ = await store.start_session("b", None, {}, "0" * 64, 10, status="succeeded", result={})
        plain = {"route_features": FEATURES, "rule": "pro-masked", "prompt": "p"}
        rows = {
            "ok": ("a", sid, {**plain, "status": "succeeded"}),
            "interrupted": ("a", sid, {**plain, "status": "interrupted"}),
            "unrouted": ("a", sid, {**plain, "status": "failed", "route_features": None}),
            "shadow": ("a", sid, {**plain, "status": "succeeded", "shadow_of": 1}),
            "compared": ("a", sid, {**plain, "status": "succeeded"}),
            "running": ("a", sid, {**plain, "status": "running"}),
            "old": ("a", sid, {**plain, "status": "succeeded"}),
            "other": ("b", other, {**plain, "status": "succeeded"}),
        }
        for name, (tenant, session, fields) in rows.items():
            ids[name] = (await store.add_version(tenant, session, **fields)).id
        await store.update_version(ids["old"], created_at=now - 10 * 86400)
        await store.add_attempts([
            _attempt("a", ids["ok"], "provider_unavailable", 0.2, None),
            _attempt("a", ids["ok"], "ok", 0.07, 0.068, provider="gemini"),
            _attempt("a", ids["interrupted"], "ambiguous", 0.13, None),
            _attempt("a", ids["compared"], "ok", 0.13, 0.13, comparison=True),
            _attempt("b", ids["other"], "ok", 0.2, 0.19),
        ])  # fmt: skip
        return ids

    ids = with_store(url, write)
    mine = with_store(url, lambda s: recorded_edits(s, "a", now - 86400, now + 60, 100))
    assert {e.id: (e.billed_usd, e.unpriced_calls) for e in mine} == {
        ids["ok"]: (pytest.approx(0.068), 0), ids["interrupted"]: (pytest.approx(0.13), 1)}  # fmt: skip
    ok = next(e for e in mine if e.id == ids["ok"])
    assert (ok.tenant, ok.rule, ok.route_features) == ("a", "pro-masked", FEATURES)
    everyone = with_store(url, lambda s: recorded_edits(s, None, now - 86400, now + 60, 100))
    assert {e.id for e in everyone} == {ids["ok"], ids["interrupted"], ids["other"]}
    wider = with_store(url, lambda s: recorded_edits(s, "a", now - 30 * 86400, now + 60, 100))
    assert ids["old"] in {e.id for e in wider}
    assert with_store(url, lambda s: count_recorded(s, "a", now - 30 * 86400, now + 60)) == 3
    pages: list[list[str]] = []
    after: tuple[float, str] | None = None
    while page := with_store(url, lambda s, key=after: recorded_edits(s, "a", now - 30 * 86400, now + 60, 2, key)):
        pages.append([e.id for e in page])
        after = (page[-1].created_at, page[-1].id)
    assert [len(p) for p in pages] == [2, 1] and pages[-1] == [ids["old"]], "newest first, each row once"

    calls = with_store(url, lambda s: ledger_calls(s, "a", now - 86400, now + 60, 100))
    assert sorted((c.provider, c.outcome) for c in calls) == [
        ("gemini", "ok"), ("openai-images", "ambiguous"), ("openai-images", "ok"),
        ("openai-images", "provider_unavailable")]  # fmt: skip
    assert len(with_store(url, lambda s: ledger_calls(s, None, now - 86400, now + 60, 100))) == 5
