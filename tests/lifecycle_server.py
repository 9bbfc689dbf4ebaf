"""A subprocess editgate (``python -m router.cli serve``) on a data dir of its own, pointed at the test
emulator, for tests that kill or signal the whole process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.test_serve_command import wait_until_serving


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, data_dir: Path, emulator: str, **env: str) -> None:
        self.data_dir, self.port = data_dir, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("EDITGATE_") and k != "IMAGE_EDIT_PROVIDER"}
        environ.update(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=f"{emulator}/v1", GEMINI_API_KEY="g-test",
                       GEMINI_BASE_URL=emulator, EDITGATE_LOG_LEVEL="warning", **env)  # fmt: skip
        cmd = [sys.executable, "-m", "router.cli", "serve", "--port", str(self.port), "--data-dir", str(data_dir)]
        # a session of its own: on PostgreSQL `serve` runs a worker process per core under a supervisor, and
        # a crash of the replica is all of them dying (a SIGKILL of the supervisor alone leaves its workers)
        self.proc = subprocess.Popen(cmd, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)  # fmt: skip
        wait_until_serving(self.url, self.proc)

    def query(self, sql: str, *args: Any) -> list[tuple]:
        """Read the server's SQLite database directly (what a crash left behind)."""
        with sqlite3.connect(self.data_dir / "editgate.db") as db:
            return db.execute(sql, args).fetchall()

    def crash(self) -> None:
        """kill -9 of every process of this replica (the supervisor and its workers)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=15)

    def stop(self) -> None:
        self.crash()


def wait_for(predicate: Any, timeout_s: float, what: str) -> float:
    """Poll until ``predicate()`` holds; the seconds it took."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout_s, f"timed out waiting for {what}"
        time.sleep(0.1)
    return time.monotonic() - start
