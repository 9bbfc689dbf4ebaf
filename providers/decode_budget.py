"""How many megapixels may be decoding at once, process-wide: memory, not request count, is what runs out.

The worker pool bounds how many image jobs run; it cannot tell a thumbnail from a 40 MP photo whose few
hundred kilobytes inflate to hundreds of megabytes. Every decode of untrusted bytes takes its image's
pixel count (read from the header, before any pixel is decoded) from this budget and gives it back when
done, so concurrent decodes never hold more than the budget at once, whatever the pool size.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class MegapixelBudget:
    """A counting semaphore in pixels, first come first served.

    An image larger than the whole budget is still decoded, alone, rather than never; a thread that already
    holds some budget (a decode inside a decode) takes more without waiting, so it can never deadlock itself.
    ``held``, ``peak`` and ``waiting`` are there to be observed (metrics, tests)."""

    def __init__(self, megapixels: float) -> None:
        self.total = round(megapixels * 1e6)
        self.held = 0
        self.peak = 0
        self.waiting = 0
        self._turns: deque[object] = deque()
        self._changed = threading.Condition()
        self._local = threading.local()

    def resize(self, megapixels: float) -> None:
        with self._changed:
            self.total = round(megapixels * 1e6)
            self._changed.notify_all()

    def _can_start(self, turn: object, pixels: int) -> bool:
        """First in line, and it fits (or nothing else is held: an image larger than the budget goes alone)."""
        return self._turns[0] is turn and (self.held == 0 or self.held + pixels <= self.total)

    @contextmanager
    def hold(self, width: int, height: int) -> Iterator[None]:
        pixels = max(0, width) * max(0, height)
        nested = getattr(self._local, "depth", 0) > 0
        with self._changed:
            if not nested:
                turn = object()
                self._turns.append(turn)
                self.waiting += 1
                try:
                    self._changed.wait_for(lambda: self._can_start(turn, pixels))
                finally:
                    self.waiting -= 1
                    self._turns.remove(turn)
                    self._changed.notify_all()  # the next in line may fit too
            self.held += pixels
            self.peak = max(self.peak, self.held)
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1
            with self._changed:
                self.held -= pixels
                self._changed.notify_all()


DECODE_BUDGET = MegapixelBudget(100.0)
"""The process's budget; the gateway sizes it from ``EDITGATE_DECODE_BUDGET_MEGAPIXELS`` at startup."""
