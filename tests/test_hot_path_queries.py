"""What the hot path asks of the database, counted on the server's own engine over real HTTP: who is calling
costs one query at most, and each SQLite statement is one round trip to the connection's thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import event, text

from router.app import create_app
from router.cli import main
from router.settings import Limits, Settings
from router.storage.db import database_url, make_engine
from router.threaded import serve_in_thread
from tests.conftest import TEST_LIMITS


@pytest.fixture()
def counted(tmp_path: Path) -> Iterator[tuple[str, Path, Callable[[], list[str]]]]:
    """A server and a function returning the statements it has run so far."""
    app = create_app(Settings(data_dir=tmp_path, limits=Limits(**TEST_LIMITS)))
    statements: list[str] = []
    engine = app.state.gateway.store.engine.sync_engine
    event.listen(engine, "before_cursor_execute", lambda c, cur, sql, *rest: statements.append(sql))
    with serve_in_thread(app) as url:
        yield url, tmp_path, lambda: list(statements)


def _lookup(url: str, key: str) -> httpx.Response:
    """A request that needs only the caller (no edit has this id, and the id's shape is refused before any query)."""
    return httpx.get(f"{url}/v1/edits/nope", headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_without_keys_a_presented_key_costs_one_query(counted: tuple[str, Path, Callable[[], list[str]]]) -> None:
    """What an unmodified OpenAI client does against a development gateway: it always sends a key."""
    url, _, statements = counted
    _lookup(url, "sk-anything")
    before = len(statements())
    assert _lookup(url, "sk-anything").status_code == 404
    assert len(statements()) - before == 1


def test_once_keys_exist_a_caller_costs_one_query(counted: tuple[str, Path, Callable[[], list[str]]]) -> None:
    url, data_dir, statements = counted
    result = CliRunner().invoke(main, ["keys", "create", "--tenant", "acme", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    key = result.output.split()[-1]
    assert _lookup(url, "sk-wrong").status_code == 401  # the first key is enforced at once
    for presented, status in ((key, 404), ("sk-wrong", 401)):
        before = len(statements())
        assert _lookup(url, presented).status_code == status
        assert len(statements()) - before == 1, statements()[before:]


def test_each_sqlite_statement_is_one_round_trip(tmp_path: Path) -> None:
    """Rows, RETURNING and row counts come back whole, and the connection's thread is asked once per statement."""

    async def scenario() -> tuple[list[Any], Any, int, int, int]:
        engine = make_engine(database_url(None, tmp_path))
        try:
            async with engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                calls: list[Any] = []
                queue = raw._execute

                async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
                    calls.append(fn)
                    return await queue(fn, *args, **kwargs)

                raw._execute = counting  # type: ignore[method-assign]
                await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"))
                start = len(calls)
                inserted = await conn.execute(text("INSERT INTO t (name) VALUES ('a'), ('b'), ('c') RETURNING id"))
                ids = [row[0] for row in inserted]
                changed = await conn.execute(text("UPDATE t SET name = 'z' WHERE id > 1"))
                rows = (await conn.execute(text("SELECT id, name FROM t ORDER BY id"))).all()
                statements_calls = len(calls) - start
                await conn.commit()
                return ids, rows, changed.rowcount, statements_calls, 3
        finally:
            await engine.dispose()

    ids, rows, rowcount, calls, statements = asyncio.run(scenario())
    assert ids == [1, 2, 3]
    assert [tuple(r) for r in rows] == [(1, "a"), (2, "z"), (3, "z")]
    assert rowcount == 2
    assert calls == statements
