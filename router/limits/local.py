"""Limits held in this process: call slots in FIFO order, sliding-minute rate windows, budget holds.

The same rules as :mod:`router.limits.shared` (which falls back to these while Redis is away).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from router.limits.base import WINDOW_S, BudgetHold, ProviderLimit


@dataclass(slots=True)
class _Gate:
    """One provider's slots: who holds one, who waits (in arrival order), and the calls of the last minute."""

    holders: set[str] = field(default_factory=set)
    waiters: list[str] = field(default_factory=list)
    calls: deque[float] = field(default_factory=deque)
    images: deque[float] = field(default_factory=deque)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def signal(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


def _room_in(window: deque[float], used_now: int, limit: int | None, now: float) -> float:
    """Seconds until ``used_now`` more fit in the window (0: they fit now). A request larger than the
    whole limit goes alone into an empty window rather than never."""
    while window and window[0] <= now - WINDOW_S:
        window.popleft()
    if limit is None or not window or len(window) + used_now <= limit:
        return 0.0
    oldest_needed = window[min(len(window) - 1, len(window) + used_now - limit - 1)]
    return max(0.001, oldest_needed + WINDOW_S - now)


class LocalLimits:
    def __init__(self, clock: Callable[[], float] = time.monotonic, settle_grace_s: float = 30.0) -> None:
        self._clock = clock
        self._limits: dict[str, ProviderLimit] = {}
        self._gates: dict[str, _Gate] = {}
        self._holds: dict[tuple[str, str], dict[str, tuple[float, float | None]]] = {}
        """(tenant, day) -> token -> (amount, settled at: None while the edit runs)."""
        self.settle_grace_s = settle_grace_s

    @property
    def shared(self) -> bool:
        return False

    def configure(self, limits: Mapping[str, ProviderLimit]) -> None:
        self._limits = dict(limits)
        for gate in self._gates.values():
            gate.signal()  # a raised limit lets waiters in now

    def limit(self, provider: str) -> ProviderLimit:
        return self._limits.get(provider) or ProviderLimit()

    def _gate(self, provider: str) -> _Gate:
        return self._gates.setdefault(provider, _Gate())

    def _try(self, provider: str, token: str, images: int) -> float | None:
        """0: taken; a number: wait that long for the rate window; None: wait for a slot."""
        gate, limit, now = self._gate(provider), self.limit(provider), self._clock()
        if gate.waiters.index(token) >= limit.concurrency - len(gate.holders):
            return None
        wait = max(_room_in(gate.calls, 1, limit.requests_per_minute, now),
                   _room_in(gate.images, images, limit.images_per_minute, now))  # fmt: skip
        if wait:
            return wait
        gate.waiters.remove(token)
        gate.holders.add(token)
        if limit.requests_per_minute is not None:
            gate.calls.append(now)
        if limit.images_per_minute is not None:
            gate.images.extend([now] * images)
        gate.signal()
        return 0.0

    async def acquire(self, provider: str, token: str, images: int = 1) -> None:
        gate = self._gate(provider)
        gate.waiters.append(token)
        try:
            while (wait := self._try(provider, token, images)) != 0:
                changed = self._gate(provider).changed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), wait)
        except BaseException:
            if token in gate.waiters:
                gate.waiters.remove(token)
                gate.signal()
            raise

    def adopt(self, provider: str, token: str) -> None:
        """Count a call started elsewhere (a slot taken while the shared store was reachable)."""
        self._gate(provider).holders.add(token)

    async def release(self, provider: str, token: str) -> None:
        gate = self._gate(provider)
        gate.holders.discard(token)
        gate.signal()

    def in_flight(self, provider: str) -> int:
        return len(self._gate(provider).holders)

    def _tenant_holds(self, tenant: str, day: str) -> dict[str, tuple[float, float | None]]:
        holds = self._holds.setdefault((tenant, day), {})
        forget = self._clock() - self.settle_grace_s
        for token in [t for t, (_, settled) in holds.items() if settled is not None and settled <= forget]:
            del holds[token]
        return holds

    async def mark(self) -> float:
        return self._clock()

    async def check(self) -> bool:
        return True

    def _counted(self, tenant: str, day: str, since: float, but: str = "") -> float:
        """Running holds, and settled ones the ledger read at ``since`` may have missed."""
        holds = self._tenant_holds(tenant, day)
        return sum(a for t, (a, settled) in holds.items() if t != but and (settled is None or settled >= since))

    async def held_usd(self, tenant: str, day: str, since: float) -> float:
        return self._counted(tenant, day, since)

    async def hold(self, hold: BudgetHold, amount: float, room: float | None, since: float) -> float | None:
        others = self._counted(hold.tenant, hold.day, since, but=hold.token)
        if room is not None and amount > 0 and others + amount > room + 1e-9:
            return others
        self._tenant_holds(hold.tenant, hold.day)[hold.token] = (amount, None)
        hold.amount, hold.held = amount, True
        return None

    async def settle(self, hold: BudgetHold, amount: float) -> None:
        holds = self._tenant_holds(hold.tenant, hold.day)
        if hold.token in holds:
            holds[hold.token] = (amount, self._clock())
        hold.held = False

    async def close(self) -> None:
        return None
