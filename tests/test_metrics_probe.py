"""A scrape under load: every pooled database connection busy (a burst of edits waiting on SQLite's one writer)
is a busy database, not an unreachable one. `/metrics` reads the queue over a probe connection of its own, so
`editgate_dependency_up{dependency="database"}` stays 1 and the "database unreachable" alert does not page."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from litestar.testing import AsyncTestClient

from router.app import create_app
from router.settings import Settings


def test_a_scrape_with_every_pooled_connection_taken_still_sees_the_database(tmp_path: Path) -> None:
    async def scenario() -> str:
        app = create_app(Settings(data_dir=tmp_path))
        async with AsyncTestClient(app) as client:
            engine = app.state.gateway.store.engine
            pool = engine.pool
            held = [await engine.connect() for _ in range(pool.size() + pool._max_overflow)]  # type: ignore[attr-defined]
            try:
                return (await asyncio.wait_for(client.get("/metrics"), 30)).text
            finally:
                for conn in held:
                    await conn.close()

    text = asyncio.run(scenario())
    assert re.search(r'^editgate_dependency_up\{dependency="database"\} 1\.0$', text, re.M), "reported unreachable"
    assert re.search(r"^editgate_queued_edits 0\.0$", text, re.M)
