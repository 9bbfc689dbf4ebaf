"""Limits held in Redis, so every replica shares one account's slots, rate windows and budget holds.

Each provider's line is a sorted set of waiters (scored by an arrival counter) and its slots a sorted
set of holders scored by their lease's end; one Lua script takes a slot atomically, in arrival order,
when a slot and room in the minute's rate windows are free. Holders renew their leases while they run
and waiters their place while they wait, so a replica that dies loses both within a lease. Times are
Redis's own clock (``TIME``), one clock for every replica.

While Redis cannot be reached, every call goes to the :class:`LocalLimits` inside (each replica then
applies the whole limit by itself); a probe brings the shared limits back when Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TypeVar

import anyio
import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from router.limits.base import BudgetHold, ProviderLimit
from router.limits.local import LocalLimits

log = structlog.get_logger("editgate.limits")
T = TypeVar("T")

_NOW = "local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
_ACQUIRE = (
    _NOW
    + """
-- KEYS: holders, waiters, waiter deadlines, arrival counter, call window, image window, calls that left
-- ARGV: token, concurrency, rpm (0: none), ipm (0: none), images, lease ms, waiter ttl ms, key ttl ms, call id
-- -> 0 taken; -1 wait for a slot; n > 0 wait n ms for the rate window; -2 this call has left (a poll that
-- reached Redis after its caller's cleanup: it must not put the caller back)
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now - 60000)
if redis.call('ZSCORE', KEYS[7], ARGV[9]) then return -2 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for _, w in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)) do
  redis.call('ZREM', KEYS[2], w); redis.call('ZREM', KEYS[3], w)
end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), ARGV[1])
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[7]), ARGV[1])
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[8]) end
if redis.call('ZRANK', KEYS[2], ARGV[1]) >= tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[1]) then return -1 end
local function wait_for(key, need, limit)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - 60000)
  local used = redis.call('ZCARD', key)
  if limit <= 0 or used == 0 or used + need <= limit then return 0 end
  local idx = math.min(used - 1, used + need - limit - 1)
  local at = redis.call('ZRANGE', key, idx, idx, 'WITHSCORES')
  return math.max(1, tonumber(at[2]) + 60000 - now)
end
local n = tonumber(ARGV[5])
local wait = math.max(wait_for(KEYS[5], 1, tonumber(ARGV[3])), wait_for(KEYS[6], n, tonumber(ARGV[4])))
if wait > 0 then return wait end
redis.call('ZREM', KEYS[2], ARGV[1]); redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[6]), ARGV[1])
if tonumber(ARGV[3]) > 0 then redis.call('ZADD', KEYS[5], now, ARGV[1]); redis.call('PEXPIRE', KEYS[5], 120000) end
if tonumber(ARGV[4]) > 0 then
  for i = 1, n do redis.call('ZADD', KEYS[6], now, ARGV[1] .. ':' .. i) end
  redis.call('PEXPIRE', KEYS[6], 120000)
end
return 0
"""
)
_LEAVE = (
    _NOW
    + """
-- KEYS: holders, waiters, waiter deadlines, calls that left; ARGV: token, call id
-- out of the line, and out of a slot granted by a poll whose answer the caller never read; and a poll of
-- this call still on its way to Redis will find it gone
for i = 1, 3 do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call('ZADD', KEYS[4], now, ARGV[2]); redis.call('PEXPIRE', KEYS[4], 120000)
return 0
"""
)
_RENEW = (
    _NOW
    + """
-- KEYS: sorted sets; ARGV[i]: token, lease ms (pairs, one per key): extend a lease still held
for i = 1, #KEYS do redis.call('ZADD', KEYS[i], 'XX', now + tonumber(ARGV[2 * i]), ARGV[2 * i - 1]) end
return 0
"""
)
_HOLDS = (
    _NOW
    + """
-- a tenant's day: amounts (hash token -> USD), ends (zset: lease end while running, then when to forget),
-- settled (hash token -> when it ended, ms): a hold settled before the ledger was read is in that read
local function live(amounts, ends, settled, since, but)
  for _, t in ipairs(redis.call('ZRANGEBYSCORE', ends, '-inf', now)) do
    redis.call('HDEL', amounts, t); redis.call('ZREM', ends, t); redis.call('HDEL', settled, t)
  end
  local sum = 0
  local all = redis.call('HGETALL', amounts)
  for i = 1, #all, 2 do
    if all[i] ~= but then
      local at = redis.call('HGET', settled, all[i])
      if (not at) or tonumber(at) >= since then sum = sum + tonumber(all[i + 1]) end
    end
  end
  return sum
end
"""
)
_HOLD = (
    _HOLDS
    + """
-- KEYS: amounts, ends, settled; ARGV: token, amount, room ('': no cap), lease ms, since ms
-- -> {1, others} taken; {0, others} no room
local others = live(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[5]), ARGV[1])
local amount = tonumber(ARGV[2])
if ARGV[3] ~= '' and amount > 0 and others + amount > tonumber(ARGV[3]) + 1e-9 then return {0, tostring(others)} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]); redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], 172800000) end
return {1, tostring(others)}
"""
)
_HELD = _HOLDS + "return tostring(live(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]), ''))"
_SETTLE = (
    _NOW
    + """
-- KEYS: amounts, ends, settled; ARGV: token, amount, grace ms
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]); redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('HSET', KEYS[3], ARGV[1], now); redis.call('PEXPIRE', KEYS[3], 172800000)
end
return 0
"""
)


async def _keeping_cancels(call: Awaitable[T]) -> T:
    """``call``, or CancelledError when the task was cancelled while it ran. redis-py can be cancelled
    mid-command, finish the command and return its answer: the cancel is then lost. Used by the loops (a
    slot wait, the lease renewer), where a lost cancel would go on polling and take the next free slot, or
    renew leases after ``close``."""
    task = asyncio.current_task()
    cancels = task.cancelling() if task else 0
    result = await call
    if task is not None and task.cancelling() > cancels:
        raise asyncio.CancelledError
    return result


UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
"""Redis is away (not a defect in a script, which raises)."""


class _ClosedTransportIsReset:
    """A write on a connection whose server went away is a reset connection, under any event loop.

    uvloop raises RuntimeError for a write on a closed transport (the stdlib loop drops it and the read
    then fails). redis-py handles OSError here (it disconnects and raises ConnectionError, which its retry
    and :data:`UNREACHABLE` understand) but lets RuntimeError through, so a Redis restart or stop became an
    edit's internal error. Every command goes through ``_send_packed_command`` because the client always
    has a ``socket_timeout``."""

    async def _send_packed_command(self, command: Iterable[bytes]) -> None:
        try:
            await super()._send_packed_command(command)  # type: ignore[misc]
        except RuntimeError as exc:
            writer = getattr(self, "_writer", None)
            if writer is None or not writer.transport.is_closing():
                raise  # not a closed connection: a defect, and it should be loud
            raise ConnectionResetError(f"redis connection closed: {exc}") from exc


def redis_client(url: str) -> aioredis.Redis:
    """A client for ``url`` that fails fast: one quick retry and no backoff, so while Redis is away edits go
    on with local limits at once; a server-closed connection is reset whatever the scheme's connection."""
    client = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=1.0,
                                     retry=Retry(NoBackoff(), 1))  # fmt: skip
    pool = client.connection_pool
    pool.connection_class = type(f"Resetting{pool.connection_class.__name__}",
                                 (_ClosedTransportIsReset, pool.connection_class), {})  # fmt: skip
    return client


class RedisLimits:
    """:class:`Limits` in Redis at ``url`` under ``prefix``; ``on_state(up)`` hears every change of reach."""

    def __init__(self, url: str, prefix: str = "editgate", lease_s: float = 30.0, poll_s: float = 0.02,
                 settle_grace_s: float = 30.0, probe_s: float = 1.0,
                 on_state: Callable[[bool], None] | None = None) -> None:  # fmt: skip
        self.client = redis_client(url)
        self.prefix, self.lease_ms, self.poll_s = prefix, int(lease_s * 1000), poll_s
        self.settle_grace_ms, self.probe_s = int(settle_grace_s * 1000), probe_s
        self.local = LocalLimits(settle_grace_s=settle_grace_s)
        self.up = True
        self._on_state = on_state
        self._scripts = {name: self.client.register_script(body) for name, body in
                         (("acquire", _ACQUIRE), ("leave", _LEAVE), ("renew", _RENEW), ("hold", _HOLD),
                          ("held", _HELD), ("settle", _SETTLE))}  # fmt: skip
        self._held: dict[str, str] = {}
        """Slots this replica holds in Redis: token -> provider (renewed until released)."""
        self._running_holds: dict[str, BudgetHold] = {}
        self._local_tokens: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def shared(self) -> bool:
        return self.up

    def configure(self, limits: Mapping[str, ProviderLimit]) -> None:
        self.local.configure(limits)

    def _keys(self, provider: str) -> list[str]:
        base = f"{self.prefix}:slots:{provider}"
        return [f"{base}:holders", f"{base}:waiters", f"{base}:waiting_until", f"{base}:arrivals",
                f"{base}:calls", f"{base}:images", f"{base}:left"]  # fmt: skip

    def _hold_keys(self, hold: BudgetHold) -> list[str]:
        base = f"{self.prefix}:budget:{hold.tenant}:{hold.day}"
        return [f"{base}:amounts", f"{base}:ends", f"{base}:settled"]

    def _start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._renewer()), asyncio.create_task(self._prober())]

    def _lost(self, exc: BaseException) -> None:
        if self.up:
            log.warning("redis_unreachable", error=type(exc).__name__, note="using this replica's own limits")
            self.up = False
            if self._on_state:
                self._on_state(False)

    async def _renewer(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            pairs = [(f"{self._keys(p)[0]}", t, self.lease_ms) for t, p in self._held.items()]
            pairs += [(self._hold_keys(h)[1], h.token, self.lease_ms) for h in self._running_holds.values()]
            if not pairs or not self.up:
                continue
            keys, args = [k for k, _, _ in pairs], [x for _, t, ms in pairs for x in (t, ms)]
            try:
                await _keeping_cancels(self._scripts["renew"](keys=keys, args=args))
            except UNREACHABLE as exc:
                self._lost(exc)

    async def _prober(self) -> None:
        while True:
            await asyncio.sleep(self.probe_s)
            if self.up:
                continue
            with contextlib.suppress(*UNREACHABLE):
                await self.check()

    async def check(self) -> bool:
        """Ping Redis now (at start-up, by the probe and for /readyz), updating the state."""
        self._start()
        try:
            await self.client.ping()
        except UNREACHABLE as exc:
            self._lost(exc)
            return False
        if not self.up:
            log.info("redis_reachable_again", note="limits are shared across replicas again")
            self.up = True
            if self._on_state:
                self._on_state(True)
        return True

    async def acquire(self, provider: str, token: str, images: int = 1) -> None:
        self._start()
        if self.up:
            try:
                await self._acquire_shared(provider, token, images)
                return
            except UNREACHABLE as exc:
                self._lost(exc)
        self._local_tokens.add(token)
        try:
            await self.local.acquire(provider, token, images)
        except BaseException:
            self._local_tokens.discard(token)
            raise

    async def _acquire_shared(self, provider: str, token: str, images: int) -> None:
        limit, keys = self.local.limit(provider), self._keys(provider)
        waiter_ttl = max(2000, int(self.poll_s * 1000 * 20))
        call = uuid.uuid4().hex  # this call's own id: a later acquire with the same token is another call
        args = [token, limit.concurrency, limit.requests_per_minute or 0, limit.images_per_minute or 0, images,
                self.lease_ms, waiter_ttl, 24 * 3600 * 1000, call]  # fmt: skip
        try:
            while True:
                wait = int(await _keeping_cancels(self._scripts["acquire"](keys=keys, args=args)))
                if wait == -2:
                    raise RuntimeError(f"slot call {call} was marked as left while it still waited")
                if wait == 0:
                    self._held[token] = provider
                    self.local.adopt(provider, token)  # counted here too, should Redis go away meanwhile
                    return
                await anyio.sleep(self.poll_s if wait < 0 else min(wait / 1000, waiter_ttl / 3000))
        except BaseException:
            with anyio.CancelScope(shield=True), contextlib.suppress(*UNREACHABLE):
                await self._scripts["leave"](keys=[*keys[:3], keys[6]], args=[token, call])
            raise

    async def release(self, provider: str, token: str) -> None:
        await self.local.release(provider, token)
        self._local_tokens.discard(token)
        if self._held.pop(token, None) is None:
            return
        try:
            await self.client.zrem(self._keys(provider)[0], token)
        except UNREACHABLE as exc:  # its lease ends it
            self._lost(exc)

    async def mark(self) -> float:
        if self.up:
            try:
                seconds, micros = await self.client.time()
                return seconds * 1000 + micros // 1000
            except UNREACHABLE as exc:
                self._lost(exc)
        return await self.local.mark()

    async def held_usd(self, tenant: str, day: str, since: float) -> float:
        if self.up:
            try:
                probe = BudgetHold(tenant=tenant, day=day, token="")
                return float(await self._scripts["held"](keys=self._hold_keys(probe), args=[repr(since)]))
            except UNREACHABLE as exc:
                self._lost(exc)
        return await self.local.held_usd(tenant, day, since)

    async def hold(self, hold: BudgetHold, amount: float, room: float | None, since: float) -> float | None:
        if self.up:
            try:
                args = [hold.token, repr(amount), "" if room is None else repr(room), self.lease_ms, repr(since)]
                taken, others = await self._scripts["hold"](keys=self._hold_keys(hold), args=args)
                if not int(taken):
                    return float(others)
                hold.amount, hold.held = amount, True
                self._running_holds[hold.token] = hold
                return None
            except UNREACHABLE as exc:
                self._lost(exc)
        return await self.local.hold(hold, amount, room, since)

    async def settle(self, hold: BudgetHold, amount: float) -> None:
        await self.local.settle(hold, amount)
        if self._running_holds.pop(hold.token, None) is None:
            return
        try:
            args = [hold.token, repr(amount), self.settle_grace_ms]
            await self._scripts["settle"](keys=self._hold_keys(hold), args=args)
        except UNREACHABLE as exc:  # its lease ends it
            self._lost(exc)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        with contextlib.suppress(*UNREACHABLE):
            await self.client.aclose()
