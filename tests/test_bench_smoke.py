"""The benchmark runs end to end in smoke mode and reports every figure, the bare-proxy arm and the ratios to it
included (values are never asserted)."""

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
    for heading in ("1. arms", "bare proxy", "2. in flight", "3. image path", "4. policy decision", "5. issue 15"):
        assert heading in result.stdout
    report = json.loads(out.read_text())
    arms = report["arms"]
    assert set(arms) == {"bare_proxy", "drop_in", "pass_through", "full"}
    for figures in arms.values():
        assert figures["errors"] == 0
        assert figures["cpu_ms_per_edit_c8"] > 0 and figures["edits_per_s_c8"] > 0
        assert set(figures["ratio_to_bare"]) == {"cpu_ms_per_edit_c8", "edits_per_s_c8", "added_p50_ms_c1"}
    assert arms["bare_proxy"]["ratio_to_bare"]["cpu_ms_per_edit_c8"] == 1
    assert report["in_flight"]["errors"] == 0 and report["in_flight"]["peak_rss_mb"] > 0
    assert {t["target"].split(":")[0] for t in report["targets"]} >= {"drop_in", "pass_through", "full edit"}
    assert (tmp_path / "bare_proxy.log").exists()
    workers = report["workers"]  # serve --workers 1 and 2 on PostgreSQL (running here, as for the storage tests)
    assert "serve --workers" in result.stdout
    assert {w["errors"] for w in workers["runs"].values()} == {0} and workers["ratio_2_to_1"] > 0
