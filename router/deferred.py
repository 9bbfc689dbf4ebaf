"""Work whose result only lands in an edit's record, run after the answer: bounded, never queued.

The drop-in answer cannot show a preservation score, so the score is measured once the caller has its
image, on the image workers (off the event loop). At most ``bound`` scores run at once; one that finds
the bound full is dropped, and the record says so (``{"skipped": "load"}``) instead of waiting in a queue
that grows with the load."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from router.models import Preservation

log = structlog.get_logger("editgate.deferred")

SKIPPED_LOAD: dict[str, Any] = {"skipped": "load"}
SKIPPED_UNDECODABLE: dict[str, Any] = {"skipped": "undecodable"}

Run = Callable[[Callable[[], Preservation]], Awaitable[Preservation]]
Record = Callable[[str, dict[str, Any]], Awaitable[bool]]


class DeferredScores:
    """Preservation scores computed after the response, at most ``bound`` at once."""

    def __init__(self, bound: int, run: Run, record: Record) -> None:
        self.bound = bound
        self._slots = asyncio.Semaphore(bound)
        self._run, self._record = run, record

    async def score(self, version_id: str, measure: Callable[[], Preservation]) -> None:
        """Measure and record the score of ``version_id``, or record that it was skipped under load."""
        if self._slots.locked():
            log.info("deferred_score_skipped", edit_id=version_id, reason="load")
            await self._record(version_id, SKIPPED_LOAD)
            return
        async with self._slots:
            try:
                preservation = (await self._run(measure)).model_dump(mode="json")
            except (OSError, ValueError, SyntaxError):  # the result passed through undecoded; it does not decode
                preservation = SKIPPED_UNDECODABLE
            await self._record(version_id, preservation)
