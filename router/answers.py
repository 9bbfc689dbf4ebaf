"""How many provider answers are read, decoded, normalized and stored at once, process-wide.

An answer is megabytes (the image as base64 in JSON). With a thousand edits in flight and a provider that
answers them at about the same time, reading every answer at once holds all of them in memory together,
then their decoded copies while they wait for the image workers. So an edit takes a *turn* once its answer's
headers are in and before its body is read (:attr:`providers.base.EditJob.answer_turn`), and gives it back
once its result is in the blob store: the other answers wait unread in their sockets, and memory follows
the number of turns, not the number of edits in flight.
"""

from __future__ import annotations

import asyncio


class AnswerTurns:
    """A semaphore in answers. ``held`` and ``peak`` are there to be observed (tests, metrics)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.held = 0
        self.peak = 0
        self._free = asyncio.Semaphore(size)

    def turn(self) -> Turn:
        """One edit's turn, not yet taken."""
        return Turn(self)

    async def _take(self) -> None:
        await self._free.acquire()
        self.held += 1
        self.peak = max(self.peak, self.held)

    def _give_back(self) -> None:
        self.held -= 1
        self._free.release()


class Turn:
    """Taken at most once (a retry's or a fallback's answer reuses it), given back at most once."""

    __slots__ = ("_turns", "taken")

    def __init__(self, turns: AnswerTurns) -> None:
        self._turns = turns
        self.taken = False

    async def take(self) -> None:
        if not self.taken:
            await self._turns._take()
            self.taken = True

    def release(self) -> None:
        if self.taken:
            self.taken = False
            self._turns._give_back()
