"""A policy reload replaces the providers: the replaced SDK clients are closed once the calls still
using them have finished, never under a call in progress."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from router.app import create_app
from router.registry import ProviderSet
from router.settings import Limits, Settings
from router.threaded import serve_in_thread
from tests.conftest import TEST_LIMITS, cloud_settings
from tests.test_breakers import policy_file, pro_edit, wait_until


def _gemini_http(providers: ProviderSet) -> httpx.AsyncClient:
    return providers["gemini"]._client._api_client._async_httpx_client  # type: ignore[attr-defined]


def test_a_reload_closes_the_replaced_clients_after_their_calls_finish(
    emulator: str, faults: Callable[..., None], tmp_path: Path
) -> None:
    path = policy_file(tmp_path)
    settings = Settings(data_dir=tmp_path / "data", limits=Limits(**TEST_LIMITS), policy_file=path,
                        **cloud_settings(emulator))  # fmt: skip
    app = create_app(settings)
    gw = app.state.gateway
    first = gw.providers
    openai_client = first["openai-images"]._client
    gemini_http = _gemini_http(first)
    with serve_in_thread(app) as url, ThreadPoolExecutor(1) as pool:
        faults("images", hang=1.0, hang_s=5, max_faults=1)  # (re)configuring also resets the emulator's counts
        before = httpx.get(f"{emulator}/_emulator/stats").json()["requests"]["images"]
        in_flight = pool.submit(pro_edit, url)
        wait_until(lambda: httpx.get(f"{emulator}/_emulator/stats").json()["requests"]["images"] > before)
        policy_file(tmp_path, version="replaced")
        wait_until(lambda: httpx.get(f"{url}/v1/policy").json()["version"] == "replaced")
        assert gw.providers is not first
        assert not openai_client.is_closed(), "a call is still using the replaced set"
        answer = in_flight.result()
        assert answer.status_code == 200 and answer.json()["provider"] == "openai-images", answer.text
        wait_until(openai_client.is_closed)
        assert gemini_http.is_closed, "and every client of the replaced set"
        again = pro_edit(url)
        assert again.status_code == 200 and again.json()["provider"] == "openai-images", "the new clients serve"
    assert gw.providers["openai-images"]._client.is_closed(), "shutdown closes the running clients too"


def test_a_retired_set_waits_for_its_last_call() -> None:
    closed: list[str] = []

    async def close() -> None:
        closed.append("client")

    async def run() -> None:
        providers = ProviderSet({}, [close])
        async with providers.in_use():
            async with providers.in_use():
                await providers.retire()
            assert closed == [], "two calls were in flight, one still is"
        assert closed == ["client"]
        await providers.retire()
        assert closed == ["client"], "closed once"

    asyncio.run(run())
