"""Throughput at 1 and 2 worker processes (`editgate serve --workers N`), the pass-through edit at concurrency 8
against the same upstream. Several workers need PostgreSQL (SQLite has one writer): each run gets a fresh
database on `EDITGATE_BENCH_PG` (default: the local server the tests use), dropped afterwards; without a
server the figure says why it is missing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.load import native_sender, run_load
from bench.procs import Services, free_port, wait_http

ADMIN_URL = os.environ.get("EDITGATE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _load(url: str, image: bytes, mask: bytes, total: int) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=64)) as client:
        send = native_sender(client, url, image, mask)
        await run_load(send, 8, 8)  # warm-up: every worker's connections and code paths
        return await run_load(send, 8, total)


def _one(workers: int, svc: Services, tmp: Path, image: bytes, mask: bytes, total: int) -> dict[str, Any]:
    name = f"editgate_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    port = free_port()
    env = {**os.environ, "OPENAI_API_KEY": "bench", "OPENAI_BASE_URL": f"{svc.emulator}/v1",
           "GEMINI_API_KEY": "bench", "GEMINI_BASE_URL": svc.emulator, "EDITGATE_LOG_LEVEL": "warning",
           "DATABASE_URL": f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"}  # fmt: skip
    argv = [sys.executable, "-m", "router.cli", "serve", "--port", str(port), "--data-dir", str(tmp / name),
            "--workers", str(workers)]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=180)
        return asyncio.run(_load(f"http://127.0.0.1:{port}", image, mask, total))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def workers_throughput(svc: Services, tmp: Path, image: bytes, mask: bytes, smoke: bool) -> dict[str, Any]:
    total = 16 if smoke else 160
    try:
        asyncio.run(_admin("SELECT 1"))
    except Exception as exc:
        return {"skipped": f"no PostgreSQL at {ADMIN_URL} ({type(exc).__name__})"}
    runs = {str(n): _one(n, svc, tmp, image, mask, total) for n in (1, 2)}
    one, two = runs["1"]["throughput_rps"], runs["2"]["throughput_rps"]
    return {"concurrency": 8, "edits": total, "runs": runs, "ratio_2_to_1": round(two / one, 2) if one else None}
