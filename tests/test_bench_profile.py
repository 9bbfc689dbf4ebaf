"""The bench's profile summary counts working samples only: threads parked in the kernel (py-spy reports them as
active on this machine) are left out, whatever Python frame they park under."""

from __future__ import annotations

from pathlib import Path

from bench.profile import top_frames

WORKER = "Thread.run (threading.py);_connection_worker_thread (aiosqlite/core.py)"
SERVE = "serve (/x/site-packages/router/cli.py)"
STACKS = "\n".join(
    [
        f"{WORKER};stmt_step (cursor.c);sqlite3_step (libsqlite3.so) 30",
        f"{WORKER};PyThread_acquire_lock_timed (libpython3.11.so);0x7f (libc.so.6) 500",
        f"{SERVE};Runner.run (asyncio/runners.py);epoll_pwait (libc.so.6) 400",
        f"{SERVE};run_edit (/x/wt/bench/router/service.py);loads (json/__init__.py);scanstring_unicode (_json.c) 70",
        "g_cond_wait_until (libvips.so.42);syscall (libc.so.6) 300",
    ]
)


def test_waiting_samples_are_left_out(tmp_path: Path) -> None:
    collapsed = tmp_path / "profile.txt"
    collapsed.write_text(STACKS)
    top = top_frames(collapsed)
    assert (top["working_samples"], top["waiting_samples"]) == (100, 1200)
    assert top["python"] == [["loads (json/__init__.py)", 0.7], ["_connection_worker_thread (aiosqlite/core.py)", 0.3]]
    assert ["run_edit (router/service.py)", 0.7] in top["inclusive"]
    assert top["self"][0] == ["scanstring_unicode (_json.c)", 0.7]
