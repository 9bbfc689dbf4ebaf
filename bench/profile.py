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

_PATH_PREFIX = re.compile(r"\(.*?(?:site-packages|python3\.\d+|/wt/[^/]+|/main)/")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("--profile needs py-spy (pip install -e '.[dev]')")
    return found


def start(pid: int, out: Path, native: bool) -> subprocess.Popen:
    """Sample `pid` until `stop`; stacks without line numbers, so one function is one frame."""
    argv = [py_spy(), "record", "--pid", str(pid), "--rate", "200", "--nolineno", "--format", "raw", "-o", str(out)]
    return subprocess.Popen([*argv, "--native"] if native else argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    _, err = proc.communicate(timeout=120)
    if proc.returncode not in (0, -signal.SIGINT):
        raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")


def _frame(raw: str) -> str:
    return _PATH_PREFIX.sub("(", raw.strip())


def top_frames(collapsed: Path, n: int = 15) -> dict[str, Any]:
    """The heaviest frames of a collapsed-stack file: by self time (where the CPU was) and inclusive (what
    caused it), each as a share of all samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";")]
        total += int(count)
        own[frames[-1]] += int(count)
        for f in set(frames):
            inclusive[f] += int(count)

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[f, round(c / total, 4)] for f, c in counter.most_common(n)] if total else []

    return {"samples": total, "self": share(own), "inclusive": share(inclusive)}
