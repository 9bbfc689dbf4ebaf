"""The benchmark runs end to end in smoke mode and reports all five figures (values are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    for heading in (
        "1. added latency",
        "2. gateway CPU per edit",
        "3. in flight",
        "4. image path",
        "5. policy decision",
    ):
        assert heading in result.stdout
    report = json.loads(out.read_text())
    assert set(report["added_latency_ms"]) == {"c1", "c8", "c32"}
    assert report["in_flight"]["errors"] == 0 and report["in_flight"]["peak_rss_mb"] > 0
    assert {"pass_through", "full"} == set(report["cpu_ms_per_edit"])
