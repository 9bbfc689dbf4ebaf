"""Regressions for defects a review found: each test failed before its fix."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from router.app import create_app
from router.cli import main
from router.settings import Limits, Settings
from router.storage.db import database_url, make_engine, migrate
from router.storage.store import Store
from router.threaded import serve_in_thread
from tests.conftest import TEST_LIMITS, fixture_bytes
from tests.fakes import ScriptedProvider, image_result

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")


def test_revoking_the_last_key_does_not_reopen_the_gateway(make_server: Callable[..., str], tmp_path: Path) -> None:
    url = make_server(data_dir=tmp_path)
    created = CliRunner().invoke(main, ["keys", "create", "--tenant", "acme", "--data-dir", str(tmp_path)])
    key = created.output.split()[-1]
    assert httpx.get(f"{url}/v1/chips").status_code == 200  # no tenant needed
    assert httpx.post(f"{url}/v1/sessions", files={"image": ("c.png", COFFEE)}).status_code == 401
    revoked = CliRunner().invoke(main, ["keys", "revoke", key, "--data-dir", str(tmp_path)])
    assert revoked.exit_code == 0
    for headers in ({}, {"Authorization": f"Bearer {key}"}):
        r = httpx.post(f"{url}/v1/sessions", files={"image": ("c.png", COFFEE)}, headers=headers)
        assert r.status_code == 401, headers


def test_bad_tenant_names_are_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["keys", "create", "--tenant", "A" * 50, "--data-dir", str(tmp_path)])
    assert result.exit_code != 0


def test_concurrent_versions_get_unique_consecutive_numbers(db_url: str | None, tmp_path: Path) -> None:
    async def run() -> list[int]:
        store = Store(make_engine(database_url(db_url, tmp_path)))
        try:
            await migrate(store.engine)
            tenant = await store.ensure_tenant("race")
            sid = await store.create_session(tenant, None, {})
            versions = await asyncio.gather(*(store.add_version(tenant, sid, status="running") for _ in range(30)))
            return sorted(v.number for v in versions)
        finally:
            await store.engine.dispose()

    assert asyncio.run(run()) == list(range(30))


@pytest.fixture()
def scripted(tmp_path: Path) -> Iterator[tuple[str, ScriptedProvider, Settings]]:
    settings = Settings(data_dir=tmp_path, limits=Limits(**TEST_LIMITS), image_edit_provider="scripted")
    app = create_app(settings)
    provider = ScriptedProvider("scripted")
    gw = app.state.gateway
    gw.providers = {**gw.providers, "scripted": provider}
    gw.policy.providers["scripted"] = gw.policy.providers["local"].model_copy(update={"model": "scripted-1"})
    with serve_in_thread(app) as url:
        yield url, provider, settings


def test_undecodable_provider_output_fails_the_version_and_keeps_the_ledger(scripted: tuple) -> None:
    url, provider, settings = scripted
    provider.then(image_result(b"\x89PNG\r\n\x1a\n not really", images=1))
    files = [("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))]
    r = httpx.post(f"{url}/v1/edits", files=files, data={"prompt": "remove the table"}, timeout=30)
    assert r.status_code == 502 and r.json()["error"]["code"] == "provider_bad_output"
    edit = httpx.get(f"{url}/v1/edits/{r.json()['error']['edit_id']}").json()
    assert edit["status"] == "failed"

    async def ledger() -> list:
        store = Store(make_engine(database_url(None, settings.data_dir)))
        try:
            return [(a.provider, a.outcome) for a in await store.attempts_for("dev")]
        finally:
            await store.engine.dispose()

    assert asyncio.run(ledger()) == [("scripted", "ok")], "the paid attempt is in the ledger"
    assert len(provider.jobs) == 1 and provider.jobs[0].mask is not None


def test_idempotency_key_is_free_again_after_its_session_is_deleted(cloud: httpx.Client) -> None:
    headers = {"Idempotency-Key": "delete-me-1"}
    files = [("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))]
    first = cloud.post("/v1/edits", files=files, data={"prompt": "remove the table"}, headers=headers).json()
    assert cloud.delete(f"/v1/sessions/{first['session_id']}").status_code == 204
    again = cloud.post("/v1/edits", files=files, data={"prompt": "remove the table"}, headers=headers)
    assert again.status_code == 200 and "idempotent-replayed" not in again.headers
    assert again.json()["id"] != first["id"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("POST", "/v1/sessions", {"content": b"null", "headers": {"content-type": "application/json"}}, 400),
        ("POST", "/v1/sessions", {"content": b'["image"]', "headers": {"content-type": "application/json"}}, 400),
        ("POST", "/v1/sessions", {"content": b"{", "headers": {"content-type": "application/json"}}, 400),
        ("POST", "/v1/sessions", {"files": {"image": ("c.png", COFFEE)}, "data": {"metadata": "[1]"}}, 422),
        ("GET", "/v1/sessions/ses_" + "0" * 32 + "/versions/99999999999999999999", {}, 400),
        ("GET", "/v1/sessions/ses_" + "0" * 32 + "/compare?a=0&b=3000000000", {}, 400),
        ("GET", "/v1/sessions/ab%00cd", {}, 404),
        ("GET", "/v1/edits/ab%00cd", {}, 404),
        (
            "POST",
            "/v1/sessions/ses_" + "0" * 32 + "/edits",
            {"data": {"prompt": "x", "parent_version": "3000000000"}},
            422,
        ),
    ],
)
def test_client_input_never_causes_a_500(
    cloud: httpx.Client, method: str, path: str, kwargs: dict, status: int
) -> None:
    r = cloud.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    assert "error" in r.json()


def test_concurrent_edits_of_one_session_claim_the_same_files(db_url: str | None, tmp_path: Path) -> None:
    """Compare runs several edits of one session at once: claiming the shared source must not collide."""

    async def run() -> int:
        store = Store(make_engine(database_url(db_url, tmp_path)))
        try:
            await migrate(store.engine)
            tenant = await store.ensure_tenant("claims")
            sid = await store.create_session(tenant, None, {})
            blobs = [("a" * 64, "source", 10), ("b" * 64, "mask", 5)]
            await asyncio.gather(*(store.own_blobs(tenant, sid, blobs) for _ in range(20)))
            return len(await store.referenced(["a" * 64, "b" * 64]))
        finally:
            await store.engine.dispose()

    assert asyncio.run(run()) == 2
