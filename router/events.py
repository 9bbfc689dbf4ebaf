"""Live progress of each edit: an ordered, replayable list of events per edit id.

The edit's code publishes (``queued``, ``routed``, ``attempt``, ``partial_image``, then ``completed`` or
``failed``); any number of subscribers read them, first what already happened (after a
``Last-Event-ID``), then live. Event ids count up from 1 per edit. Memory is bounded: an edit's
buffer is dropped ``retain_s`` after its terminal event (and the oldest finished buffers go first
beyond ``max_edits``), and its previews' bytes as soon as it ends (``partial_image`` events replay with
``superseded: true`` and no ``b64_json``); a subscriber that comes later gets the terminal event from the
stored version record instead (see :func:`stored_terminal`).
"""

from __future__ import annotations

import asyncio
import io
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import pybase64
from PIL import Image

from policies import RouteDecision
from providers.base import OnPartial, RunBlocking
from providers.imaging import MIME, decode, encode
from router.models import Attempt

TERMINAL = frozenset({"completed", "failed"})
_accepted_watcher: ContextVar[Callable[[str], None] | None] = ContextVar("edit_accepted_watcher", default=None)


@dataclass(frozen=True, slots=True)
class Event:
    id: int | str
    type: str
    data: dict[str, Any]


@dataclass(slots=True)
class _Edit:
    events: list[Event] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    finished_at: float | None = None


class EventBus:
    def __init__(self, retain_s: float = 300.0, max_edits: int = 10_000) -> None:
        self.retain_s = retain_s
        self.max_edits = max_edits
        self._edits: dict[str, _Edit] = {}
        self._finished: OrderedDict[str, float] = OrderedDict()
        """Finished edits in the order they finished: the sweep drops from the front."""
        self.relay: Any = None
        """With ``REDIS_URL``: an :class:`router.events_relay.EventRelay` that every event is also sent to."""

    def publish(self, edit_id: str, type_: str, data: dict[str, Any]) -> Event:
        """Append an event and wake the edit's subscribers (event-loop thread only)."""
        edit = self._edits.get(edit_id)
        if edit is None:
            self._sweep()
            edit = self._edits[edit_id] = _Edit()
        if edit.finished_at is not None:  # nothing follows a terminal event (a late, stray publish)
            return edit.events[-1]
        event = Event(len(edit.events) + 1, type_, data)
        edit.events.append(event)
        if type_ in TERMINAL:
            edit.finished_at = self._finished[edit_id] = time.monotonic()
            edit.events = [_superseded(e) for e in edit.events]  # a new list: live subscribers keep the old one
        woken, edit.changed = edit.changed, asyncio.Event()
        woken.set()
        if self.relay is not None:
            self.relay.send(edit_id, event)
        return event

    def accepted(self, edit_id: str, position: int = 0) -> None:
        """The edit's version exists: its first event, and the id for whoever is waiting to stream it."""
        self.publish(edit_id, "queued", {"position": position})
        if (watcher := _accepted_watcher.get()) is not None:
            watcher(edit_id)

    def knows(self, edit_id: str) -> bool:
        self._sweep()
        return edit_id in self._edits

    async def subscribe(self, edit_id: str, last_event_id: int = 0, heartbeat_s: float | None = None
                        ) -> AsyncIterator[Event | None]:  # fmt: skip
        """Events after ``last_event_id``, replayed then live, until the terminal one. ``None`` is yielded
        when ``heartbeat_s`` passes without an event (the caller sends a keep-alive)."""
        self._sweep()
        edit = self._edits.get(edit_id)
        if edit is None:
            return
        events = edit.events  # appended to until the terminal event; only replaced after it
        position = next((i for i, e in enumerate(events) if int(e.id) > last_event_id), len(events))
        while True:
            changed = edit.changed
            while position < len(events):
                event = events[position]
                position += 1
                yield event
                if event.type in TERMINAL:
                    return
            try:
                await asyncio.wait_for(changed.wait(), heartbeat_s)
            except TimeoutError:
                yield None

    def _sweep(self) -> None:
        now = time.monotonic()
        while self._finished:
            edit_id, finished_at = next(iter(self._finished.items()))
            if now - finished_at <= self.retain_s and len(self._edits) < self.max_edits:
                return
            del self._finished[edit_id], self._edits[edit_id]


def _superseded(event: Event) -> Event:
    """A finished edit keeps its previews' place in the history but not their bytes: the final replaces them."""
    if event.type != "partial_image":
        return event
    data = {k: v for k, v in event.data.items() if k != "b64_json"}
    return Event(event.id, event.type, {**data, "superseded": True})


@contextmanager
def watch_accepted(callback: Callable[[str], None]) -> Iterator[None]:
    """Call ``callback`` with the edit id once an edit started in this context has its version row."""
    fired = False

    def once(edit_id: str) -> None:
        nonlocal fired
        if not fired:
            fired = True
            callback(edit_id)

    token = _accepted_watcher.set(once)
    try:
        yield
    finally:
        _accepted_watcher.reset(token)


def stored_terminal(record: dict[str, Any] | None, status: str) -> Event | None:
    """The terminal event of an edit whose buffer is gone, from its stored version record."""
    if status == "succeeded" and record:
        return Event("final", "completed", record)
    if status == "failed" and record:
        return Event("final", "failed", record.get("error") or {})
    return None


def routed_data(decision: RouteDecision) -> dict[str, Any]:
    return {
        "rule": decision.rule,
        "candidates": [c.provider for c in decision.candidates],
        "estimate_usd": decision.candidates[0].estimate_usd if decision.candidates else None,
    }


def attempt_publisher(bus: EventBus, edit_id: str) -> Callable[[Attempt], None]:
    """``attempt`` events as the executor records them; ``fallback``: this provider is not the first one tried."""
    tried: list[str] = []

    def on_attempt(attempt: Attempt) -> None:
        tried.append(attempt.provider)
        data = attempt.model_dump(mode="json", exclude_none=True)
        bus.publish(edit_id, "attempt", {**data, "fallback": tried[0] != attempt.provider})

    return on_attempt


def partial_publisher(bus: EventBus, edit_id: str, fmt: str, run: RunBlocking) -> OnPartial:
    """``partial_image`` events: each provider preview re-encoded to the requested format, off the event loop."""

    async def on_partial(index: int, data: bytes, mime: str) -> None:
        preview, width, height = await run(lambda: _preview(data, mime, fmt))
        bus.publish(edit_id, "partial_image", {"index": index, "format": fmt, "width": width, "height": height,
                                               "b64_json": pybase64.b64encode(preview).decode()})  # fmt: skip

    return on_partial


def _preview(data: bytes, mime: str, fmt: str) -> tuple[bytes, int, int]:
    if MIME.get(fmt) == mime:  # already in the requested format: only its header is read
        with Image.open(io.BytesIO(data)) as img:
            return data, img.width, img.height
    pixels = decode(data)
    return encode(pixels, fmt), pixels.shape[1], pixels.shape[0]  # type: ignore[arg-type]
