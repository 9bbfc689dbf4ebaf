"""py-spy against a running process during a load phase: the collapsed stacks on disk, the heaviest frames in JSON."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_WAITS = frozenset({"PyThread_acquire_lock_timed", "take_gil", "pthread_cond_wait", "pthread_cond_timedwait",
                    "sem_wait", "sem_timedwait", "sem_clockwait", "clock_nanosleep", "nanosleep", "usleep",
                    "epoll_wait", "epoll_pwait", "select", "poll", "futex_wait", "__futex_abstimed_wait_common",
                    "pthread_cond_clockwait", "pthread_join", "sleep", "g_cond_wait", "g_cond_wait_until",
                    "g_mutex_lock_slowpath", "g_rec_mutex_lock", "g_async_queue_pop_intern_unlocked"})  # fmt: skip
_PATH_PREFIX = re.compile(r"\(.*?(?:site-packages|python3\.\d+|/wt/[^/]+|/main)/")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("--profile needs py-spy (pip install -e '.[dev]')")
    return found


def start(pid: int, out: Path) -> subprocess.Popen:
    """Sample `pid` until `stop`: native frames too (they tell waiting from working, see `top_frames`), and no
    line numbers, so one function is one frame."""
    argv = [py_spy(), "record", "--pid", str(pid), "--rate", "200", "--native", "--nolineno", "--format", "raw",
            "-o", str(out)]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    _, err = proc.communicate(timeout=120)
    if proc.returncode not in (0, -signal.SIGINT):
        raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")


def _frame(raw: str) -> str:
    return _PATH_PREFIX.sub("(", raw.strip())


def _is_python(frame: str) -> bool:
    return frame.endswith(".py)")


def _waiting(frames: list[str]) -> bool:
    """A thread parked in the kernel (a lock, the GIL, a condition, a sleep, epoll). py-spy counts such threads
    as active on this machine, so the native frames below the innermost Python frame decide."""
    native = frames[max((i for i, f in enumerate(frames) if _is_python(f)), default=-1) + 1 :]
    return any(f.split(" ", 1)[0] in _WAITS for f in native)


def top_frames(collapsed: Path, n: int = 15) -> dict[str, Any]:
    """The heaviest frames among the samples where a thread was working, each as a share of those samples:
    `self` the innermost frame (native included), `python` the innermost Python frame (the C it called counted
    in), `inclusive` every Python frame on the stack (what caused the work)."""
    own: Counter[str] = Counter()
    python: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = waiting = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";")]
        if _waiting(frames):
            waiting += int(count)
            continue
        total += int(count)
        own[frames[-1]] += int(count)
        py_frames = [f for f in frames if _is_python(f)]
        python[py_frames[-1] if py_frames else frames[-1]] += int(count)
        for f in set(py_frames):
            inclusive[f] += int(count)

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[f, round(c / total, 4)] for f, c in counter.most_common(n)] if total else []

    return {"working_samples": total, "waiting_samples": waiting, "self": share(own), "python": share(python),
            "inclusive": share(inclusive)}  # fmt: skip
