"""What a limits store offers, whichever holds it (this process or Redis)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from policies import Policy

WINDOW_S = 60.0
"""Rate limits are per minute, over a sliding window."""


@dataclass(frozen=True, slots=True)
class ProviderLimit:
    """One provider account's limits, from the policy: calls in flight, and per-minute rates (None: none)."""

    concurrency: int = 16
    requests_per_minute: int | None = None
    images_per_minute: int | None = None


def limits_from_policy(policy: Policy) -> dict[str, ProviderLimit]:
    return {
        name: ProviderLimit(p.max_concurrency, p.requests_per_minute, p.images_per_minute)
        for name, p in policy.providers.items()
    }


def utc_day(now: float | None = None) -> str:
    """The budget day a hold counts against (budgets reset at 00:00 UTC)."""
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() if now is None else now))


@dataclass(slots=True)
class BudgetHold:
    """An edit's reservation of its estimated cost against its tenant's daily cap, from routing until its
    cost is in the ledger. ``amount`` is 0 until a hold is taken."""

    tenant: str = ""
    day: str = ""
    amount: float = 0.0
    held: bool = False
    token: str = field(default_factory=lambda: uuid.uuid4().hex)


class Limits(Protocol):
    """Slots are FIFO across everyone sharing the store; a holder that dies loses its slot and holds
    when their lease runs out."""

    def configure(self, limits: Mapping[str, ProviderLimit]) -> None:
        """The providers' limits (at start and on every policy reload)."""

    async def acquire(self, provider: str, token: str, images: int = 1) -> None:
        """Wait (in line) for a call slot of ``provider`` and room in its rate windows for one request of
        ``images`` images; ``token`` names the holder until :meth:`release`."""

    async def release(self, provider: str, token: str) -> None: ...

    async def mark(self) -> float:
        """Now, on the holds' clock: taken just before the ledger is read, so that holds settled before
        it (their cost is in what is read) are not counted twice."""

    async def held_usd(self, tenant: str, day: str, since: float) -> float:
        """What the tenant's holds add to its ledgered spend today, as read from the ledger at ``since``."""

    async def hold(self, hold: BudgetHold, amount: float, room: float | None, since: float) -> float | None:
        """Take ``amount`` if the tenant's holds plus it fit in ``room`` (its cap minus the spend read from
        the ledger at ``since``; None: no cap). None when taken, else the holds that left no room."""

    async def check(self) -> bool:
        """Whether the limits are shared right now (asks the store; always True in process)."""

    async def settle(self, hold: BudgetHold, amount: float) -> None:
        """The edit ended: its hold now counts ``amount`` (0: nothing billed) until the ledger surely has it."""

    async def close(self) -> None: ...

    @property
    def shared(self) -> bool:
        """Whether the limits are currently held across replicas (False: in this process only)."""


@contextlib.asynccontextmanager
async def slot(limits: Limits, provider: str, images: int = 1) -> AsyncIterator[None]:
    """One call slot for the length of the block (released however the block ends)."""
    token = uuid.uuid4().hex
    await limits.acquire(provider, token, images)
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True):  # a deadline's cancel scope must not keep the slot taken
            await limits.release(provider, token)
