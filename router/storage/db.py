"""Engine, migrations and the database URL: SQLite in the data directory by default, PostgreSQL via
``DATABASE_URL``. Migrations run at start-up under a lock (PostgreSQL's advisory lock; on SQLite an
exclusive ``flock`` on a file beside the database, as SQLite's own DDL is not transactional under Alembic), so
replicas and ``--workers`` that start together on one empty database do not race.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from router.storage.sqlite_hops import one_hop_creator

log = structlog.get_logger("editgate.storage")
_MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x6564_6974  # "edit"


def database_url(url: str | None, data_dir: Path) -> str:
    """Normalize a DATABASE_URL to an async driver; default to SQLite under the data directory."""
    if not url:
        return f"sqlite+aiosqlite:///{(data_dir / 'editgate.db').resolve()}"
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+asyncpg://" + url[len(plain) :]
    return url


WAIT_S = 600
"""How long a burst of edits waits for a pooled connection, and on SQLite for the write lock, before failing:
as long as a request may wait (queueing, bounded by the request deadline), so bursts queue instead of failing."""


def make_probe_engine(url: str) -> AsyncEngine | None:
    """A one-connection engine for health reads, or None for an in-memory SQLite (a second engine would open
    another, empty database)."""
    if url.startswith("sqlite") and make_url(url).database in (None, "", ":memory:"):
        return None
    return make_engine(url, probe=True)


def make_engine(url: str, *, probe: bool = False) -> AsyncEngine:
    """The request engine, or with ``probe`` a one-connection engine for health reads (the metrics scrape):
    when a burst has every pooled connection waiting on SQLite's one writer, the database is busy, not
    unreachable, and a probe that queued behind the burst would say otherwise."""
    wait = 5.0 if probe else WAIT_S  # how long to wait for a pooled connection
    if url.startswith("sqlite"):
        size, overflow = (1, 0) if probe else (8, 8)
        # sqlite3's `timeout` is SQLite's busy timeout: one setting, not a second one in a PRAGMA
        parsed = make_url(url)
        creator = {"async_creator": one_hop_creator(parsed.database, WAIT_S)} if parsed.database else {}
        engine = create_async_engine(
            url, connect_args={"timeout": WAIT_S}, pool_size=size, max_overflow=overflow, pool_timeout=wait, **creator
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # WAL's recommended level: no fsync per commit, still crash-safe
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    size, overflow = (1, 0) if probe else (10, 20)
    return create_async_engine(url, pool_size=size, max_overflow=overflow, pool_pre_ping=True, pool_timeout=wait)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


@contextlib.contextmanager
def _sqlite_schema_lock(database: str | None) -> Iterator[None]:
    """Held while one process migrates a SQLite file; the others block here, then find the schema at head.
    The lock goes with the open file, so a process that dies mid-migration releases it."""
    if not database or database == ":memory:":
        yield
        return
    with Path(f"{database}.migrate-lock").open("a") as held:
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting_for_migration_lock", note="another process is migrating this database")
            fcntl.flock(held, fcntl.LOCK_EX)  # blocks: the caller runs this in a thread
        yield


async def migrate(engine: AsyncEngine) -> None:
    with contextlib.ExitStack() as stack:
        if engine.dialect.name == "sqlite":
            await asyncio.to_thread(stack.enter_context, _sqlite_schema_lock(engine.url.database))
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade)
