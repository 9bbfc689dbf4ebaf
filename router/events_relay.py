"""An edit's events for every replica: each event the local bus publishes is appended, in order, to a
Redis stream per edit (``{prefix}:events:{edit_id}``, kept ``retain_s`` after the last event), so a
replica that did not run the edit replays it from the start (or after ``Last-Event-ID``) and then reads
it live. A Redis stream is pub/sub and a replay buffer in one: a late subscriber misses nothing, as a
plain PUBLISH would let it. After the stream expires, the stored version record answers (see
:func:`router.events.stored_terminal`). Redis away: events stay on the replica that ran the edit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
import structlog

from router.events import TERMINAL, Event
from router.limits.shared import UNREACHABLE

log = structlog.get_logger("editgate.events")
MAX_QUEUED = 10_000
"""Events waiting to be sent while Redis is slow; beyond this they are dropped (the local bus has them)."""


class EventRelay:
    def __init__(self, client: aioredis.Redis, prefix: str, retain_s: float) -> None:
        self.client, self.prefix, self.retain_ms = client, prefix, max(1000, int(retain_s * 1000))
        self._queue: asyncio.Queue[tuple[str, Event]] | None = None

    def key(self, edit_id: str) -> str:
        return f"{self.prefix}:events:{edit_id}"

    def send(self, edit_id: str, event: Event) -> None:
        """Queue ``event`` for the stream (event-loop thread; never waits)."""
        if self._queue is None:
            self._queue = asyncio.Queue(MAX_QUEUED)
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait((edit_id, event))

    async def run(self) -> None:
        """Send queued events in order, one edit's events never reordered."""
        if self._queue is None:
            self._queue = asyncio.Queue(MAX_QUEUED)
        while True:
            edit_id, event = await self._queue.get()
            fields = {"type": event.type, "data": json.dumps(event.data, separators=(",", ":"))}
            try:
                async with self.client.pipeline(transaction=True) as pipe:
                    pipe.xadd(self.key(edit_id), fields)  # type: ignore[arg-type]
                    pipe.pexpire(self.key(edit_id), self.retain_ms)
                    await pipe.execute()
            except UNREACHABLE as exc:
                log.info("event_not_relayed", edit_id=edit_id, error=type(exc).__name__)
            finally:
                self._queue.task_done()

    async def flush(self, timeout_s: float) -> bool:
        """Wait until every queued event is sent (or given up on), at most ``timeout_s``: at shutdown, after
        the drain, so the events of edits that finished during it reach the other replicas' readers."""
        if self._queue is None:
            return True
        try:
            await asyncio.wait_for(self._queue.join(), timeout_s)
            return True
        except TimeoutError:
            log.warning("events_not_flushed", left=self._queue.qsize())
            return False

    async def read(self, edit_id: str, after: int, heartbeat_s: float) -> AsyncIterator[Event | None]:
        """The edit's events after ``after`` (ids count from 1, as the bus's do), then live until the
        terminal one; ``None`` each ``heartbeat_s`` without an event. Nothing when no stream exists, and
        no more once Redis cannot be reached (the stored record answers then)."""
        with contextlib.suppress(*UNREACHABLE):
            async for event in self._read(edit_id, after, heartbeat_s):
                yield event

    async def _read(self, edit_id: str, after: int, heartbeat_s: float) -> AsyncIterator[Event | None]:
        key, last, seen, idle = self.key(edit_id), "0-0", 0, 0.0
        if not await self.client.exists(key):
            return
        while True:
            answer = await self.client.xread({key: last}, block=1000, count=100)
            if not answer:
                idle += 1.0
                if idle >= heartbeat_s:
                    idle = 0.0
                    yield None
                if not await self.client.exists(key):  # expired: the stored record answers
                    return
                continue
            idle = 0.0
            for entry_id, fields in answer[0][1]:
                last, seen = entry_id, seen + 1
                if seen <= after:
                    continue
                event = Event(seen, fields[b"type"].decode(), json.loads(fields[b"data"]))
                yield event
                if event.type in TERMINAL:
                    return
