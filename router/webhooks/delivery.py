"""The delivery worker: claim due outbox rows, POST each (signed, pinned to the checked address, bounded
in time and bytes, no redirects), record the attempt, schedule the next with exponential backoff and full
jitter until the retry window closes. Rows live in the database, so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from typing import Any

import httpx
import structlog

from router.settings import WebhookSettings
from router.storage.models import WebhookDelivery
from router.storage.store import Store
from router.webhooks import outbox
from router.webhooks.guard import Refused, Resolver, Target, check, system_resolver
from router.webhooks.signing import signed_headers

log = structlog.get_logger("editgate.webhooks")
USER_AGENT = "editgate-webhooks/1"
PRUNE_EVERY_S = 3600.0


def backoff_s(attempts: int, settings: WebhookSettings, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2^(attempts-1))] (AWS's "Exponential Backoff And Jitter")."""
    ceiling = min(settings.retry_cap_s, settings.retry_base_s * 2 ** max(0, attempts - 1))
    return rng.uniform(0, ceiling)


def pinned_request(client: httpx.AsyncClient, target: Target, body: str, headers: dict[str, str]) -> httpx.Request:
    """A request to the checked IP: the URL names the address, ``Host`` and TLS SNI (hence certificate
    checks) keep the name, so no second DNS lookup can send it elsewhere."""
    url = target.url
    host_header = url.netloc.decode("ascii")
    return client.build_request(
        "POST",
        url.copy_with(host=target.ip),
        content=body.encode(),
        headers={**headers, "host": host_header, "content-type": "application/json", "user-agent": USER_AGENT},
        extensions={"sni_hostname": url.host} if url.scheme == "https" else {},
    )


async def post_once(client: httpx.AsyncClient, target: Target, body: str, headers: dict[str, str],
                    settings: WebhookSettings) -> tuple[int, str | None]:  # fmt: skip
    """(status code, error text or None). At most ``max_response_bytes`` of the answer are read. No
    connection is reused: one to an IP verified for one name must not carry a request for another."""
    request = pinned_request(client, target, body, headers)
    async with asyncio.timeout(settings.timeout_s):
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            read = bytearray()
            async for chunk in response.aiter_raw():
                read += chunk[: settings.max_response_bytes - len(read)]
                if len(read) >= settings.max_response_bytes:
                    break
        finally:
            await response.aclose()
    if 200 <= response.status_code < 300:
        return response.status_code, None
    text = bytes(read[:200]).decode("utf-8", "replace").strip()
    return response.status_code, f"HTTP {response.status_code}" + (f": {text}" if text else "")


class DeliveryWorker:
    """One per process; several processes share the outbox through leases."""

    def __init__(self, store: Store, settings: WebhookSettings, resolve: Resolver = system_resolver,
                 rng: random.Random | None = None, retention_s: float = 30 * 86400) -> None:  # fmt: skip
        self.store, self.settings, self.resolve, self.retention_s = store, settings, resolve, retention_s
        self.pruned_at = 0.0
        self.owner = f"wkr_{uuid.uuid4().hex[:20]}"
        self.rng = rng or random.Random()
        self.wake = asyncio.Event()
        self.inflight: set[asyncio.Task[None]] = set()
        timeout = httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s)
        limits = httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=0)
        self.client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False, limits=limits)

    async def run(self) -> None:
        """Deliver until cancelled; on the way out, finish nothing half-way: leases are given back."""
        loop = asyncio.get_running_loop()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed first
                loop.call_soon_threadsafe(self.wake.set)

        outbox.WAKEUP.listeners.add(wake)
        try:
            while True:
                try:
                    await self.tick()
                except Exception:
                    log.exception("webhook_worker_failed")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.poll_s):
                        await self.wake.wait()
                self.wake.clear()
        finally:
            outbox.WAKEUP.listeners.discard(wake)
            for task in list(self.inflight):
                task.cancel()
            await asyncio.gather(*self.inflight, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.shield(outbox.release(self.store, self.owner))
            await self.client.aclose()

    async def tick(self) -> int:
        if time.time() - self.pruned_at > PRUNE_EVERY_S:
            self.pruned_at = time.time()
            await outbox.prune(self.store, self.pruned_at - self.retention_s)
        free = self.settings.concurrency - len(self.inflight)
        if free <= 0:
            return 0
        claimed = await outbox.claim(self.store, self.owner, self.settings.lease_s, free)
        for delivery in claimed:
            task = asyncio.create_task(self.guarded(delivery))
            self.inflight.add(task)
            task.add_done_callback(self._done)
        return len(claimed)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.inflight.discard(task)
        self.wake.set()  # a slot is free: more may be due

    async def guarded(self, delivery: WebhookDelivery) -> None:
        try:
            await self.deliver(delivery)
        except Exception:  # the lease runs out and the row is taken again
            log.exception("webhook_delivery_failed", delivery=delivery.id)

    async def deliver(self, delivery: WebhookDelivery) -> None:
        started = time.time()
        code: int | None = None
        try:
            target = await check(delivery.url, self.settings.allow_private, self.resolve)
            secret, _ = await outbox.ensure_secret(self.store, delivery.tenant_id)
            headers = signed_headers(secret, delivery.webhook_id, delivery.payload, time.time())
            code, error = await post_once(self.client, target, delivery.payload, headers, self.settings)
        except Refused as exc:
            error = f"refused: {exc}"
        except TimeoutError:
            error = f"timed out after {self.settings.timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        attempts = delivery.attempts + 1
        now = time.time()
        if error is None:
            status, next_at = "delivered", None
        else:
            next_at = now + backoff_s(attempts, self.settings, self.rng)
            status = "pending" if next_at <= delivery.created_at + self.settings.retry_window_s else "failed"
            next_at = next_at if status == "pending" else None
        took_ms = round((now - started) * 1000, 1)
        entry: dict[str, Any] = {"at": round(started, 3), "status_code": code, "error": error,
                                 "duration_ms": took_ms, "next_attempt_at": next_at}  # fmt: skip
        kept = await outbox.record_attempt(self.store, delivery, self.owner, entry, status, next_at)
        if next_at is not None:  # due before the next poll: be awake for it
            asyncio.get_running_loop().call_later(max(0.0, next_at - time.time()) + 0.01, self.wake.set)
        log.info("webhook_attempt", delivery=delivery.id, webhook_id=delivery.webhook_id, edit_id=delivery.version_id,
                 attempt=attempts, status=status, status_code=code, error=error, lease_kept=kept)  # fmt: skip
