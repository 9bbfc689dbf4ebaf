"""The migrations produce exactly the schema the models describe (no drift between the two), and replicas (or
`serve --workers N`) that start together on one empty database all migrate it and come up: the first brings
the schema to head, the others wait for it and find nothing left to do."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from router.storage.db import alembic_config, database_url, make_engine, migrate
from router.storage.models import Base

VERSIONS = Path(__file__).resolve().parents[1] / "router" / "storage" / "migrations" / "versions"
HEAD = sorted(p.name.split("_")[0] for p in VERSIONS.glob("0*.py"))[-1]


def test_migrations_match_the_models(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    with engine.begin() as conn:  # and they go back down cleanly
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")


async def _migrate_at_once(url: str, count: int) -> list[BaseException | None]:
    engines = [make_engine(url) for _ in range(count)]
    try:
        return await asyncio.gather(*(migrate(e) for e in engines), return_exceptions=True)
    finally:
        for engine in engines:
            await engine.dispose()


async def _schema_version(url: str) -> str:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    finally:
        await engine.dispose()


def test_four_replicas_migrating_one_empty_database_at_once_all_succeed(
    fresh_db: Callable[[], str | None], tmp_path: Path
) -> None:
    url = database_url(fresh_db(), tmp_path)
    outcomes = asyncio.run(_migrate_at_once(url, 4))
    assert outcomes == [None] * 4
    assert asyncio.run(_schema_version(url)) == HEAD


def test_the_migrate_command_beside_a_starting_replica_on_sqlite(tmp_path: Path) -> None:
    """Two processes (a deploy's migration job and a replica's start-up) on one fresh SQLite file."""
    cmd = [sys.executable, "-m", "router.cli", "migrate", "--data-dir", str(tmp_path)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert asyncio.run(_schema_version(database_url(None, tmp_path))) == HEAD
