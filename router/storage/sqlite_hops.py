"""aiosqlite with one thread hop per statement, for SQLAlchemy's ``sqlite+aiosqlite`` dialect.

aiosqlite runs every call on its connection's own thread, and SQLAlchemy's adapter makes four calls per
statement: open a cursor, execute, fetch the rows, close the cursor. Each is a round trip through a queue
and back to the event loop (two thread wake-ups), so a synchronous edit's two transactions cost some fifty
wake-ups; on a busy machine those dominated the database's share of the profile. Here a statement is one
call that executes it and fetches its rows together; opening and closing the cursor are plain attribute
work on the caller's thread (the statement has already run to completion). Everything else (commit,
rollback, the connection's own thread, its queue) is aiosqlite's.

The connection is opened with ``check_same_thread=False`` because a cursor object is made on the event
loop's thread and used on the connection's: its calls never overlap (SQLAlchemy serializes a connection's
statements, and the connection's thread runs them one at a time).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

import aiosqlite
from aiosqlite.context import contextmanager


class _Cursor(aiosqlite.Cursor):
    """Executes and fetches in one hop; fetches then return the rows already read."""

    def __init__(self, conn: aiosqlite.Connection, cursor: sqlite3.Cursor) -> None:
        super().__init__(conn, cursor)
        self._rows: list[Any] = []

    def _run(self, sql: str, parameters: Iterable[Any]) -> None:
        self._cursor.execute(sql, parameters)
        self._rows = self._cursor.fetchall() if self._cursor.description else []

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> _Cursor:
        await self._execute(self._run, sql, [] if parameters is None else parameters)
        return self

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        n = self.arraysize if size is None else size
        rows, self._rows = self._rows[:n], self._rows[n:]
        return rows

    async def close(self) -> None:
        self._rows = []
        self._cursor.close()


class OneHopConnection(aiosqlite.Connection):
    @contextmanager
    async def cursor(self) -> aiosqlite.Cursor:
        return _Cursor(self, self._conn.cursor())


def one_hop_creator(path: str, timeout_s: float) -> Callable[[], Any]:
    """``async_creator`` for ``create_async_engine``: a connection to the SQLite file at ``path``."""

    def connector() -> sqlite3.Connection:
        return sqlite3.connect(path, timeout=timeout_s, check_same_thread=False)

    async def create() -> OneHopConnection:
        connection = OneHopConnection(connector, iter_chunk_size=64)
        connection._thread.daemon = True  # as SQLAlchemy's own aiosqlite connect does
        return await connection

    return create
