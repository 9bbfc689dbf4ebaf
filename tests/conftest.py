from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from openai import OpenAI
from PIL import Image

from router.app import create_app
from router.settings import Limits, Settings
from router.threaded import serve_in_thread as serve

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"  # ../shared beside the clone

TEST_LIMITS = {
    "max_request_bytes": 6 * 1024 * 1024,
    "max_file_bytes": 5 * 1024 * 1024,
    "max_prompt_chars": 2000,
}


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def png_bytes(arr: np.ndarray, **save: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", **save)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    assert FIXTURES.is_dir(), f"fixtures not found at {FIXTURES}"
    return FIXTURES


@pytest.fixture(scope="session")
def make_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., str]]:
    """Start an editgate on a real socket with the given settings; all stop at session end."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> str:
            limits = {**TEST_LIMITS, **overrides.pop("limits", {})}
            data_dir = overrides.pop("data_dir", None) or tmp_path_factory.mktemp("data")
            settings = Settings(data_dir=data_dir, limits=Limits(**limits), **overrides)
            return stack.enter_context(serve(create_app(settings)))

        yield start


@pytest.fixture(scope="session")
def server(make_server: Callable[..., str]) -> str:
    return make_server()


@pytest.fixture()
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=60) as c:
        yield c


@pytest.fixture(scope="session", autouse=True)
def _json_logging() -> None:
    from router.logging import configure_logging

    configure_logging("warning")


@pytest.fixture(scope="session")
def emulator() -> Iterator[str]:
    from providers.emulator import create_emulator_app

    with serve(create_emulator_app()) as url:
        yield url


@pytest.fixture()
def faults(emulator: str) -> Iterator[Callable[..., None]]:
    """Set the emulator's fault plan for one test: ``faults("images", rate_limit=1.0, latency_ms=...)``."""

    def set_plan(endpoint: str, retry_after_s: float = 1.0, hang_s: float = 30.0, max_faults: int | None = None,
                 **rates: float) -> None:  # fmt: skip
        plan = {"faults": rates, "retry_after_s": retry_after_s, "hang_s": hang_s, "max_faults": max_faults}
        httpx.put(f"{emulator}/_emulator/config", json={"endpoints": {endpoint: plan}}).raise_for_status()

    yield set_plan
    httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()


CLOUD_DB_URL: dict[str, str] = {}


def cloud_settings(emulator: str) -> dict[str, str]:
    """Settings that point every cloud provider at the emulator (test keys)."""
    return {
        "openai_api_key": "sk-test",
        "openai_base_url": f"{emulator}/v1",
        "gemini_api_key": "g-test",
        "gemini_base_url": emulator,
    }


@pytest.fixture(scope="session")
def cloud_server(make_server: Callable[..., str], emulator: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An editgate whose cloud providers are the emulator (as `editgate serve` does with no keys)."""
    from router.storage.db import database_url

    data_dir = tmp_path_factory.mktemp("cloud")
    url = make_server(data_dir=data_dir, **cloud_settings(emulator))
    CLOUD_DB_URL[url] = database_url(None, data_dir)
    return url


@pytest.fixture()
def cloud(cloud_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cloud_server, timeout=60) as c:
        yield c


@pytest.fixture()
def sdk(cloud_server: str) -> Iterator[OpenAI]:
    """The SDK pointed at editgate's drop-in (editgate's cloud providers are the emulator)."""
    with OpenAI(base_url=f"{cloud_server}/v1", api_key="any-key-in-dev-mode", max_retries=0) as client:
        yield client


@pytest.fixture()
def received(emulator: str) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The request bodies the emulator received during the test (its endpoint and raw body each)."""
    httpx.put(f"{emulator}/_emulator/config", json={"record_bodies": True}).raise_for_status()

    def read() -> list[dict[str, Any]]:
        out = []
        for item in httpx.get(f"{emulator}/_emulator/received").json():
            out.append({"endpoint": item["endpoint"], "body": base64.b64decode(item["body_b64"])})
        return out

    yield read
    httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()


def form_fields(body: bytes) -> dict[str, bytes]:
    """Name -> value of each multipart part (the last of a repeated name)."""
    boundary = body.split(b"\r\n", 1)[0]
    fields = {}
    for part in body.split(boundary)[1:-1]:
        head, _, value = part.partition(b"\r\n\r\n")
        name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
        fields[name] = value.removesuffix(b"\r\n")
    return fields


def sent_to(received: Callable[[], list[dict[str, Any]]], endpoint: str) -> list[dict[str, Any]]:
    """The fields of each request editgate sent to the emulator's ``endpoint`` (multipart or JSON)."""
    out = []
    for item in received():
        if item["endpoint"] != endpoint:
            continue
        body = item["body"]
        out.append(json.loads(body) if body.startswith(b"{") else form_fields(body))
    return out


PG_ADMIN_URL = os.environ.get("EDITGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def new_database() -> Iterator[Callable[[], str]]:
    """Make fresh PostgreSQL databases (each dropped at the end of the run)."""
    import asyncio
    import uuid

    import asyncpg

    created: list[str] = []

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def make() -> str:
        name = f"editgate_test_{uuid.uuid4().hex[:12]}"
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"

    yield make
    for name in created:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def fresh_db(backend: str, new_database: Callable[[], str]) -> Callable[[], str | None]:
    """A database of its own for one test: None (a new SQLite file in its data dir) or a new PostgreSQL one."""
    return lambda: new_database() if backend == "postgresql" else None


@pytest.fixture(scope="session")
def db_url(fresh_db: Callable[[], str | None]) -> str | None:
    return fresh_db()


@pytest.fixture()
def stack_ledger(cloud_server: str, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], list]:
    """Ledger rows of a session on the `cloud` server (which uses SQLite in its own data dir)."""
    import asyncio

    from sqlalchemy import select

    from router.storage.db import make_engine
    from router.storage.models import Attempt

    def rows(session_id: str) -> list:
        async def query() -> list:
            engine = make_engine(CLOUD_DB_URL[cloud_server])
            try:
                async with engine.connect() as conn:
                    result = await conn.execute(select(Attempt).where(Attempt.session_id == session_id))
                    return list(result)
            finally:
                await engine.dispose()

        return asyncio.run(query())

    return rows
