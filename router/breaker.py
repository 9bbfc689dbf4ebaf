"""Per-provider circuit breakers: closed -> open (consecutive failures or error rate) -> half-open probe.

Their state is the ``health`` the policy engine reads, so an open breaker drops its provider from
new decisions without any call being made. Times are monotonic.

Every :meth:`Breaker.begin` must end in :meth:`Breaker.record` (the call was made: it succeeded or
failed, and a call cut short by a deadline or cancellation failed) or :meth:`Breaker.release` (no call
was made): a half-open probe that ended in neither would keep the provider locked out for good.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from policies.model import BreakerSettings

State = Literal["closed", "open", "half_open"]


class Breaker:
    def __init__(self, settings: BreakerSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._recent: deque[bool] = deque(maxlen=settings.window)
        self._consecutive = 0
        self._opened_at: float | None = None
        self._hold_s = 0.0
        """How long this opening lasts at least (a quota's reset), beyond the usual cool-down."""
        self._probe_out = False

    def configure(self, settings: BreakerSettings) -> None:
        """New thresholds, window and cool-down (a policy reload), keeping the recent outcomes and state."""
        self.settings = settings
        self._recent = deque(self._recent, maxlen=settings.window)

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= max(self.settings.cool_down_s, self._hold_s):
            return "half_open"
        return "open"

    @property
    def half_open_in_s(self) -> float | None:
        """While open: seconds until it half-opens (the cool-down, or a quota's longer hold); else None."""
        if self._opened_at is None or self.state != "open":
            return None
        return max(0.0, self._opened_at + max(self.settings.cool_down_s, self._hold_s) - self._clock())

    def allows(self) -> bool:
        """May a new request go here? In half-open, only while no probe is in flight."""
        state = self.state
        return state == "closed" or (state == "half_open" and not self._probe_out)

    def begin(self) -> bool:
        """Claim the right to call; False when open (or a half-open probe is already out)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probe_out:
            self._probe_out = True
            return True
        return False

    def release(self) -> None:
        """Give back a claim that made no call (cancelled while queued): no verdict on the provider."""
        self._probe_out = False

    def record(self, ok: bool) -> None:
        self._probe_out = False
        self._recent.append(ok)
        if ok:
            self._hold_s = 0.0
            self._consecutive = 0
            self._opened_at = None
            return
        self._consecutive += 1
        failures = self._recent.count(False)
        rate_tripped = (
            len(self._recent) >= self.settings.min_calls and failures / len(self._recent) >= self.settings.error_rate
        )
        if self._opened_at is not None or self._consecutive >= self.settings.consecutive_failures or rate_tripped:
            self._opened_at = self._clock()

    def trip(self, for_s: float | None = None) -> None:
        """Open at once (bad credentials: nothing will succeed until someone fixes them); ``for_s``: stay
        open at least that long (a quota that resets then), not just the cool-down."""
        self._probe_out = False
        self._opened_at = self._clock()
        self._hold_s = for_s or 0.0


class Breakers:
    def __init__(self, settings: BreakerSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._by_provider: dict[str, Breaker] = {}

    def configure(self, settings: BreakerSettings) -> None:
        """Apply reloaded settings to the breakers that exist and to those created later."""
        self.settings = settings
        for breaker in self._by_provider.values():
            breaker.configure(settings)

    def get(self, provider: str) -> Breaker:
        if provider not in self._by_provider:
            self._by_provider[provider] = Breaker(self.settings, self._clock)
        return self._by_provider[provider]

    def health(self, providers: list[str]) -> dict[str, bool]:
        return {name: self.get(name).allows() for name in providers}

    def states(self) -> dict[str, State]:
        return {name: b.state for name, b in self._by_provider.items()}

    def details(self) -> dict[str, dict[str, Any]]:
        """Each breaker's state and, while open, how many seconds until it half-opens (for the console)."""
        return {
            name: {"state": b.state, "half_open_in_s": None if (s := b.half_open_in_s) is None else round(s, 1)}
            for name, b in self._by_provider.items()
        }
