"""The limits store on its own, in process and on Redis: slots in arrival order, a waiter that gives up
leaves the line, a dead holder's slot frees when its lease ends, per-minute rates, and budget holds
that N concurrent edits cannot together overspend."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from router.limits import BudgetHold, Limits, LocalLimits, ProviderLimit
from router.limits.shared import RedisLimits

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_limits(**kw: float) -> RedisLimits:
    return RedisLimits(REDIS_URL, prefix=f"editgate-test-{uuid.uuid4().hex[:10]}", poll_s=0.01, **kw)


def run(make: Callable[[], Limits], body: Callable[[Limits], Awaitable[None]]) -> None:
    async def main() -> None:
        limits = make()
        try:
            await body(limits)
        finally:
            await limits.close()

    asyncio.run(main())


KINDS = {"local": LocalLimits, "redis": redis_limits}


@pytest.fixture(params=sorted(KINDS))
def make(request: pytest.FixtureRequest) -> Callable[[], Limits]:
    return KINDS[request.param]


async def _settle_in() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


def test_slots_are_given_in_arrival_order(make: Callable[[], Limits]) -> None:
    async def body(limits: Limits) -> None:
        limits.configure({"p": ProviderLimit(concurrency=1)})
        await limits.acquire("p", "first")
        order: list[str] = []
        got = asyncio.Condition()

        async def wait(token: str) -> None:
            await limits.acquire("p", token)
            async with got:
                order.append(token)
                got.notify_all()

        tasks = []
        for token in ("b", "c", "d"):
            tasks.append(asyncio.create_task(wait(token)))
            await _settle_in()  # b is in line before c is
        assert order == [], "the only slot is held"
        for holder in ("first", "b", "c"):
            await limits.release("p", holder)
            async with got:
                await got.wait_for(lambda h=holder: len(order) > ("first", "b", "c").index(h))
        await asyncio.gather(*tasks)
        assert order == ["b", "c", "d"]

    run(make, body)


def test_a_waiter_that_gives_up_leaves_the_line(make: Callable[[], Limits]) -> None:
    async def body(limits: Limits) -> None:
        limits.configure({"p": ProviderLimit(concurrency=1)})
        await limits.acquire("p", "holder")
        quitter = asyncio.create_task(limits.acquire("p", "quitter"))
        await _settle_in()
        later = asyncio.create_task(limits.acquire("p", "later"))
        await _settle_in()
        quitter.cancel()
        await limits.release("p", "holder")
        await asyncio.wait_for(later, 10)  # not stuck behind the one that left

    run(make, body)


def test_a_quitters_poll_that_reaches_redis_after_it_left_takes_nothing() -> None:
    """A cancel can land while a poll is on the wire: Redis runs that poll whenever its bytes arrive, maybe
    after the quitter's cleanup. It must find the quitter gone, not put it back in line (or in a slot)."""

    async def body(limits: Limits) -> None:
        assert isinstance(limits, RedisLimits)
        limits.configure({"p": ProviderLimit(concurrency=1)})
        await limits.acquire("p", "holder")
        real, late = limits._scripts["acquire"], []

        async def on_the_wire(keys: list[str], args: list[object]) -> object:
            if args[0] != "quitter":
                return await real(keys=keys, args=args)

            async def arrives_late() -> None:  # sent: Redis runs it whatever becomes of the caller
                await asyncio.sleep(0.3)
                await real(keys=keys, args=args)

            late.append(asyncio.create_task(arrives_late()))
            await asyncio.Event().wait()  # the reply never comes before the cancel
            raise AssertionError("unreachable: the caller is cancelled while it waits")

        limits._scripts["acquire"] = on_the_wire  # type: ignore[assignment]
        quitter = asyncio.create_task(limits.acquire("p", "quitter"))
        await _settle_in()
        quitter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await quitter
        await limits.release("p", "holder")
        await asyncio.gather(*late)  # the quitter's poll has now run, after its cleanup
        await asyncio.wait_for(limits.acquire("p", "later"), 5)  # the slot is free, not held by the quitter

    run(redis_limits, body)


def test_a_cancel_that_the_redis_client_swallows_still_ends_the_wait() -> None:
    """redis-py 8.1 on CPython 3.11 can be cancelled mid-command, finish it and return its answer as if
    nothing happened (seen under load: 3 waiters in 140 kept polling after their cancel and took the slot
    once it freed). The wait must still end, cancelled, and give back whatever that answer granted."""

    async def body(limits: Limits) -> None:
        assert isinstance(limits, RedisLimits)
        limits.configure({"p": ProviderLimit(concurrency=1)})
        await limits.acquire("p", "holder")
        real = limits._scripts["acquire"]

        async def swallowing(keys: list[str], args: list[object]) -> object:
            if args[0] == "quitter":
                with contextlib.suppress(asyncio.CancelledError):  # as the client may: the cancel is lost
                    await asyncio.sleep(30)
            return await real(keys=keys, args=args)

        limits._scripts["acquire"] = swallowing  # type: ignore[assignment]
        quitter = asyncio.create_task(limits.acquire("p", "quitter"))
        await _settle_in()
        quitter.cancel()
        await limits.release("p", "holder")
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(quitter, 5)
        assert quitter.cancelled(), "the quitter went on waiting after its cancel"
        await asyncio.wait_for(limits.acquire("p", "later"), 5)  # and holds no slot

    run(redis_limits, body)


def test_a_dead_replicas_slot_frees_when_its_lease_ends() -> None:
    async def body(limits: Limits) -> None:
        dead = redis_limits(lease_s=0.5)
        dead.prefix = limits.prefix  # type: ignore[attr-defined]
        for store in (limits, dead):
            store.configure({"p": ProviderLimit(concurrency=1)})
        await dead.acquire("p", "never-released")
        await dead.close()  # the replica is gone: nobody renews its lease
        await asyncio.wait_for(limits.acquire("p", "next"), 20)

    run(redis_limits, body)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_connection_redis_closed_is_reopened_or_given_up_never_an_internal_error(loop: str) -> None:
    """Redis closing a pooled connection (a restart, a stop) is a connection error under either event loop:
    redis-py reconnects when Redis is back and falls back to local limits when it is not. uvloop raises
    RuntimeError for a write on a closed transport, which redis-py does not treat as a connection error; an
    edit under load got a 500 from it (CI, ``test_redis_stopped_during_a_load_...``)."""

    async def main() -> None:
        limits = redis_limits()
        limits.configure({"p": ProviderLimit(concurrency=2)})
        try:
            assert await limits.check()
            for conn in limits.client.connection_pool._available_connections:
                conn._writer.transport.close()  # the server's side went away; the client has not read it yet
            await asyncio.sleep(0.05)
            await asyncio.wait_for(limits.acquire("p", "after-a-restart"), 5)
            assert limits.shared, "Redis is up: the client reconnects rather than giving up on it"

            with socket.socket() as probe:  # a port nothing listens on: Redis stopped, not restarted
                probe.bind(("127.0.0.1", 0))
                gone = probe.getsockname()[1]
            limits.client.connection_pool.connection_kwargs["port"] = gone
            for conn in limits.client.connection_pool._available_connections:
                conn.port = gone
                conn._writer.transport.close()
            await asyncio.sleep(0.05)
            await asyncio.wait_for(limits.acquire("p", "while-redis-is-away"), 5)
            assert not limits.shared, "Redis is away: this replica's own limits take over"
        finally:
            await limits.close()

    if loop == "uvloop":
        uvloop.run(main())
    else:
        asyncio.run(main())


def test_requests_per_minute_hold_back_the_next_call(make: Callable[[], Limits]) -> None:
    async def body(limits: Limits) -> None:
        limits.configure({"p": ProviderLimit(concurrency=10, requests_per_minute=2)})
        for token in ("a", "b"):
            await limits.acquire("p", token)
            await limits.release("p", token)
        third = asyncio.create_task(limits.acquire("p", "c"))
        await _settle_in()
        assert not third.done(), "two calls in the last minute: the third waits for the window"
        third.cancel()

    run(make, body)


def test_images_per_minute_count_each_image(make: Callable[[], Limits]) -> None:
    async def body(limits: Limits) -> None:
        limits.configure({"p": ProviderLimit(concurrency=10, images_per_minute=4)})
        await limits.acquire("p", "three", images=3)
        await limits.acquire("p", "one", images=1)
        more = asyncio.create_task(limits.acquire("p", "another", images=1))
        await _settle_in()
        assert not more.done(), "four images this minute already"
        more.cancel()

    run(make, body)


def test_local_rate_window_slides() -> None:
    now = [1000.0]
    limits = LocalLimits(clock=lambda: now[0])

    async def body(_: Limits) -> None:
        limits.configure({"p": ProviderLimit(concurrency=10, requests_per_minute=1)})
        await limits.acquire("p", "a")
        second = asyncio.create_task(limits.acquire("p", "b"))
        await _settle_in()
        assert not second.done()
        now[0] += 60.5
        limits.configure({"p": ProviderLimit(concurrency=10, requests_per_minute=1)})  # wakes the waiter
        await asyncio.wait_for(second, 5)

    run(lambda: limits, body)


def test_concurrent_holds_cannot_pass_the_cap_together(make: Callable[[], Limits]) -> None:
    async def body(limits: Limits) -> None:
        day, read = "2026-11-30", await limits.mark()  # the ledger (nothing billed yet) is read now
        holds = [BudgetHold(tenant="acme", day=day) for _ in range(20)]
        refused = await asyncio.gather(*(limits.hold(h, 0.1, room=1.0, since=read) for h in holds))
        assert sum(r is None for r in refused) == 10
        assert await limits.held_usd("acme", day, read) == pytest.approx(1.0)
        taken = [h for h, r in zip(holds, refused, strict=True) if r is None]
        late = BudgetHold(tenant="acme", day=day)
        assert await limits.hold(late, 0.1, room=1.0, since=read) == pytest.approx(1.0), "no room left"
        await limits.settle(taken[0], 0.0)  # failed, nothing billed: its room is free again
        assert await limits.hold(late, 0.1, room=1.0, since=read) is None
        await limits.settle(taken[1], 0.25)  # billed more than estimated: counted until the ledger shows it
        assert await limits.held_usd("acme", day, read) == pytest.approx(1.15), "a ledger read before it settled"
        assert await limits.held_usd("other", day, read) == 0.0

    run(make, body)


def test_a_settled_hold_is_not_counted_twice_by_a_later_ledger_read(make: Callable[[], Limits]) -> None:
    async def body(limits: Limits) -> None:
        day = "2026-11-30"
        before = await limits.mark()
        hold = BudgetHold(tenant="acme", day=day)
        assert await limits.hold(hold, 0.5, room=1.0, since=before) is None
        await limits.settle(hold, 0.5)  # its ledger row is committed before this
        await asyncio.sleep(0.01)
        after = await limits.mark()
        assert await limits.held_usd("acme", day, before) == pytest.approx(0.5), "that read may have missed it"
        assert await limits.held_usd("acme", day, after) == 0.0, "this read has it from the ledger"

    run(make, body)
