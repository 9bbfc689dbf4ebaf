"""Webhooks end to end: a receiver on 127.0.0.1 verifies every call with the `standardwebhooks` library;
retries keep the webhook-id; a restart between retries loses nothing; refused URLs are a 422."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from standardwebhooks import Webhook

from router.app import create_app
from router.settings import Limits, Settings, WebhookSettings
from router.threaded import serve_in_thread
from tests.conftest import TEST_LIMITS, fixture_bytes
from tests.webhook_receiver import receiver

FAST = {"allow_private": True, "retry_base_s": 0.05, "retry_cap_s": 0.2, "poll_s": 0.05, "lease_s": 5}


async def enqueued(store: Any, version: Any, record: dict[str, Any]) -> None:
    """The outbox rows a terminal transition writes (``enqueue`` in its own transaction, as a hook would)."""
    from router.webhooks import enqueue

    async with store.tx() as db:
        await enqueue(db, version, record)
        await db.commit()


def edit(client: httpx.Client, masked: bool = True, **fields: Any) -> httpx.Response:
    """A masked edit (the local provider serves it); without the mask no provider can, so it fails."""
    files = [("image", ("astronaut.png", fixture_bytes("astronaut.png")))]
    if masked:
        files.append(("mask", ("m.png", fixture_bytes("astronaut_helmet_mask.png"))))
    return client.post("/v1/edits", files=files, data={"prompt": "remove the helmet", **fields})


def deliveries(client: httpx.Client, edit_id: str, until: Callable[[list[dict]], bool]) -> list[dict]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = client.get(f"/v1/edits/{edit_id}/deliveries")
        assert r.status_code == 200, r.text
        if until(data := r.json()["data"]):
            return data
        time.sleep(0.05)
    raise AssertionError(f"deliveries never reached the expected state: {data}")


@pytest.fixture(scope="module")
def hooks_server(make_server: Callable[..., str]) -> str:
    return make_server(webhooks=WebhookSettings(**FAST))


@pytest.fixture(scope="module")
def secret(hooks_server: str) -> str:
    """The dev tenant's secret, shown once: on the response of the first request that used a webhook_url."""
    with receiver() as rx, httpx.Client(base_url=hooks_server, timeout=60) as c:
        first = edit(c, webhook_url=rx.url)
        assert first.status_code == 200, first.text
        shown = first.headers.get("x-editgate-webhook-secret")
        assert shown and shown.startswith("whsec_")
        second = edit(c, webhook_url=rx.url)
        assert "x-editgate-webhook-secret" not in second.headers
        rx.wait_for(2)
    return shown


def test_a_succeeded_edit_is_delivered_signed_with_the_record(hooks_server: str, secret: str) -> None:
    with receiver() as rx, httpx.Client(base_url=hooks_server, timeout=60) as c:
        r = edit(c, webhook_url=rx.url)
        assert r.status_code == 200, r.text
        (headers, body), *_ = rx.wait_for(1)
        message = Webhook(secret).verify(body, headers)
        record = c.get(f"/v1/edits/{r.json()['id']}").json()
        with pytest.raises(Exception, match="signature"):
            Webhook(secret).verify(body.replace(b"succeeded", b"failed", 1), headers)
    assert message["type"] == "edit.succeeded"
    assert message["data"] == record
    assert headers["webhook-id"].startswith("msg_") and headers["content-type"] == "application/json"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 300


def test_a_failed_edit_is_delivered_as_edit_failed(hooks_server: str, secret: str) -> None:
    with receiver() as rx, httpx.Client(base_url=hooks_server, timeout=60) as c:
        r = edit(c, masked=False, webhook_url=rx.url)
        assert r.status_code >= 400
        edit_id = r.json()["error"]["edit_id"]
        (headers, body), *_ = rx.wait_for(1)
        message = Webhook(secret).verify(body, headers)
        assert message["type"] == "edit.failed"
        assert message["data"] == c.get(f"/v1/edits/{edit_id}").json()
        assert message["data"]["error"]["code"] == r.json()["error"]["code"]


def test_a_receiver_that_fails_twice_gets_the_third_try_with_the_same_webhook_id(
    hooks_server: str, secret: str
) -> None:
    with receiver(plan=[500, 503]) as rx, httpx.Client(base_url=hooks_server, timeout=60) as c:
        r = edit(c, webhook_url=rx.url)
        calls = rx.wait_for(3)
        log = deliveries(c, r.json()["id"], lambda d: bool(d) and d[0]["status"] == "delivered")
    ids = {h["webhook-id"] for h, _ in calls}
    assert len(calls) == 3 and len(ids) == 1
    for headers, body in calls:
        Webhook(secret).verify(body, headers)
    (delivery,) = log
    assert delivery["webhook_id"] == ids.pop() and delivery["attempts"] == 3
    assert [a["status_code"] for a in delivery["history"]] == [500, 503, 200]
    assert [a["error"] is None for a in delivery["history"]] == [False, False, True]
    assert all(a["next_attempt_at"] is not None for a in delivery["history"][:2])
    assert delivery["history"][2]["next_attempt_at"] is None and delivery["next_attempt_at"] is None


def test_refused_webhook_urls_are_a_422_naming_the_field(client: httpx.Client) -> None:
    cases = {
        "http://169.254.169.254/latest/meta-data/": "metadata",
        "http://127.0.0.1:9/x": "loopback",
        "http://[::ffff:10.0.0.1]/": "private",
        "ftp://example.com/in": "http and https",
    }
    for url, why in cases.items():
        r = edit(client, webhook_url=url)
        assert r.status_code == 422, (url, r.text)
        error = r.json()["error"]
        assert error["param"] == "webhook_url" and why in error["message"], r.text
        assert error["code"] in ("invalid_webhook_url", "invalid_parameter"), r.text


def test_the_delivery_log_is_the_tenants_own(hooks_server: str) -> None:
    with httpx.Client(base_url=hooks_server, timeout=60) as c:
        r = c.get("/v1/edits/ver_00000000000000000000000000000000/deliveries")
        assert r.status_code == 404 and r.json()["error"]["param"] == "edit_id"


def test_a_restart_between_retries_loses_no_delivery(tmp_path: Path) -> None:
    """The first process gets only failures and stops; the second, on the same data dir, delivers."""

    def app(**webhooks: Any):  # type: ignore[no-untyped-def]
        settings = Settings(data_dir=tmp_path, limits=Limits(**TEST_LIMITS), webhooks=WebhookSettings(**webhooks))
        return serve_in_thread(create_app(settings))

    with receiver(plan=[503] * 1000) as rx:
        with app(**FAST) as url, httpx.Client(base_url=url, timeout=60) as c:
            r = edit(c, webhook_url=rx.url)
            secret = r.headers["x-editgate-webhook-secret"]
            edit_id = r.json()["id"]
            rx.wait_for(2)
        failures = len(rx.calls)
        with rx.lock:
            rx.plan.clear()  # the receiver recovers while no editgate runs
        with app(**FAST) as url, httpx.Client(base_url=url, timeout=60) as c:
            (delivery,) = deliveries(c, edit_id, lambda d: bool(d) and d[0]["status"] == "delivered")
    ids = {h["webhook-id"] for h, _ in rx.calls}
    assert len(ids) == 1 and len(rx.calls) > failures
    headers, body = rx.calls[-1]
    assert Webhook(secret).verify(body, headers)["data"]["id"] == edit_id
    assert delivery["history"][-1]["status_code"] == 200


def test_registered_endpoints_get_every_terminal_edit_of_their_tenant(tmp_path: Path) -> None:
    from router.cli import main

    settings = Settings(data_dir=tmp_path, limits=Limits(**TEST_LIMITS), webhooks=WebhookSettings(**FAST))
    with receiver() as rx, serve_in_thread(create_app(settings)) as url:
        env = {"EDITGATE_DATA_DIR": str(tmp_path), "EDITGATE_WEBHOOK_ALLOW_PRIVATE": "true"}
        runner = CliRunner()
        added = runner.invoke(main, ["webhooks", "add", "--tenant", "acme", rx.url], env=env)
        assert added.exit_code == 0, added.output
        secret = added.output.split()[-1]
        assert secret.startswith("whsec_")
        key = runner.invoke(main, ["keys", "create", "--tenant", "acme"], env=env).output.split()[-1]
        listed = runner.invoke(main, ["webhooks", "list"], env=env)
        assert "acme" in listed.output and rx.url in listed.output
        with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {key}"}) as c:
            r = edit(c)
            assert r.status_code == 200, r.text
            (headers, body), *_ = rx.wait_for(1)
        assert Webhook(secret).verify(body, headers)["data"]["id"] == r.json()["id"]
        endpoint_id = listed.output.split()[0]
        removed = runner.invoke(main, ["webhooks", "remove", endpoint_id], env=env)
        assert removed.exit_code == 0, removed.output
        assert rx.url not in runner.invoke(main, ["webhooks", "list"], env=env).output
        refused = runner.invoke(main, ["webhooks", "add", "--tenant", "acme", "http://169.254.169.254/"], env=env)
        assert refused.exit_code != 0 and "metadata" in refused.output


def test_delivery_connects_to_the_checked_address_and_rechecks_each_time(tmp_path: Path) -> None:
    """DNS is a stub: the name maps to 127.0.0.1 (allowed here) and the request goes there with the name as
    Host; when the name later maps to the metadata address, the attempt is refused before any connection."""
    from router.storage.db import database_url, make_engine, migrate
    from router.storage.models import Version
    from router.storage.store import Store
    from router.webhooks.delivery import DeliveryWorker
    from router.webhooks.outbox import deliveries_for

    with receiver() as rx:
        port = int(rx.url.rsplit(":", 1)[1].split("/")[0])
        answers = {"hooks.example.test": ["127.0.0.1"]}

        async def resolve(host: str, _port: int) -> list[str]:
            return answers[host]

        async def scenario() -> list[Any]:
            store = Store(make_engine(database_url(None, tmp_path)))
            await migrate(store.engine)
            await store.ensure_tenant("t")
            try:
                hook = f"http://hooks.example.test:{port}/in"
                settings = WebhookSettings(**FAST)
                for n, address in ((1, "127.0.0.1"), (2, "169.254.169.254")):
                    answers["hooks.example.test"] = [address]
                    version = Version(id=f"ver_{n:032x}", tenant_id="t", shadow_of=None, settings={"webhook_url": hook})
                    await enqueued(store, version, {"id": version.id, "status": "succeeded"})
                    worker = DeliveryWorker(store, settings, resolve)
                    assert await worker.tick() == 1
                    await asyncio.gather(*worker.inflight)
                    await worker.client.aclose()
                return [(await deliveries_for(store, "t", f"ver_{n:032x}"))[0] for n in (1, 2)]
            finally:
                await store.engine.dispose()

        allowed, refused = asyncio.run(scenario())
    assert len(rx.calls) == 1
    assert rx.calls[0][0]["host"] == f"hooks.example.test:{port}"
    assert allowed.status == "delivered"
    assert refused.status == "pending" and refused.last_status_code is None
    assert "refused" in refused.last_error and "metadata" in refused.last_error
    assert json.loads(rx.calls[0][1])["data"]["id"] == allowed.version_id


def test_workers_in_several_processes_claim_each_delivery_once(
    tmp_path: Path, fresh_db: Callable[[], str | None]
) -> None:
    """Two workers racing over one outbox (SQLite or PostgreSQL) each take disjoint rows; a lease that ran
    out (its process died) is taken over."""
    from sqlalchemy import update

    from router.storage.db import database_url, make_engine, migrate
    from router.storage.models import Version, WebhookDelivery
    from router.storage.store import Store
    from router.webhooks.outbox import claim

    url = database_url(fresh_db(), tmp_path)

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        store = Store(make_engine(url))
        await migrate(store.engine)
        await store.ensure_tenant("t")
        try:
            for n in range(20):
                version = Version(id=f"ver_{n:032x}", tenant_id="t", shadow_of=None,
                                  settings={"webhook_url": "http://127.0.0.1:9/in"})  # fmt: skip
                await enqueued(store, version, {"id": version.id, "status": "failed"})
            a, b = await asyncio.gather(*(claim(store, owner, 60, 20) for owner in ("wkr_a", "wkr_b")))
            async with store.tx() as db:  # worker a dies: its leases run out
                await db.execute(update(WebhookDelivery).where(WebhookDelivery.lease_owner == "wkr_a")
                                 .values(lease_until=0))  # fmt: skip
                await db.commit()
            c = await claim(store, "wkr_c", 60, 20)
            return [d.id for d in a], [d.id for d in b], [d.id for d in c]
        finally:
            await store.engine.dispose()

    a, b, c = asyncio.run(scenario())
    assert len(a) + len(b) == 20 and not set(a) & set(b)
    assert sorted(c) == sorted(a)
