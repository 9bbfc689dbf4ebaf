"""The printed table: every arm's figures beside the bare proxy's, and each figure beside issue 15's target."""

from __future__ import annotations

import math
from typing import Any

PASS_THROUGH_ARMS = ("drop_in", "pass_through")


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 15's targets, each with the measured figure and whether it is met."""
    arms, out = r["arms"], []
    for name in PASS_THROUGH_ARMS:
        ratio = arms[name]["ratio_to_bare"]
        out += [
            {"target": f"{name}: CPU per edit <= 2.0x bare", "value": ratio["cpu_ms_per_edit_c8"], "limit": 2.0},
            {"target": f"{name}: edits/s at c=8 >= 0.7x bare", "value": ratio["edits_per_s_c8"], "limit": 0.7,
             "at_least": True},
            {"target": f"{name}: added p50 at c=1 <= 2x bare", "value": ratio["added_p50_ms_c1"], "limit": 2.0},
        ]  # fmt: skip
    f = r["in_flight"]
    out += [
        {"target": "full edit: CPU per edit <= 100 ms", "value": arms["full"]["cpu_ms_per_edit_c8"], "limit": 100},
        {"target": f"{f['edits']} in flight: errors = 0", "value": f["errors"], "limit": 0},
        {"target": f"{f['edits']} in flight: peak RSS <= 1,536 MB", "value": f["peak_rss_mb"], "limit": 1536},
        {"target": f"{f['edits']} in flight: loop lag p99 <= 100 ms", "value": f["event_loop_lag_p99_ms"],
         "limit": 100},
        {"target": "policy decision <= 50 us (slowest case)", "value": max(r["decision_us"].values()), "limit": 50},
    ]  # fmt: skip
    for t in out:
        v = t["value"]
        t["met"] = not math.isnan(v) and (v >= t["limit"] if t.pop("at_least", False) else v <= t["limit"])
    return out


def render(r: dict[str, Any]) -> str:
    mode = "smoke" if r["smoke"] else "full"
    lines = [
        f"editgate benchmark ({mode}) on {r['machine']['cpus']} CPUs, Python {r['machine']['python']}; "
        f"photo 1024x1024 PNG {r['photo']['png_bytes'] / 1e6:.2f} MB with a mask, OpenAI images.edit multipart",
        "",
        "1. arms, same upstream (emulator, render cache), same photo; ratio to the bare proxy in brackets",
        f"   {'arm':<42} {'CPU/edit c=8':>20} {'edits/s c=8':>18} {'added p50 c=1':>20} {'errors':>6}",
    ]
    for v in r["arms"].values():
        x = v["ratio_to_bare"]
        lines.append(
            f"   {v['label']:<42} {v['cpu_ms_per_edit_c8']:>8.1f} ms ({x['cpu_ms_per_edit_c8']:>5.1f}x)"
            f" {v['edits_per_s_c8']:>8.1f} ({x['edits_per_s_c8']:>5.2f}x)"
            f" {v['added_p50_ms_c1']:>8.1f} ms ({x['added_p50_ms_c1']:>5.1f}x) {v['errors']:>6}"
        )
    f = r["in_flight"]
    lines.append(
        f"2. in flight: {f['edits']} edits x {f['provider_latency_ms'] / 1000:g} s provider latency: "
        f"{f['errors']} errors {f['error_kinds'] or ''}, peak RSS {f['peak_rss_mb']:.0f} MB, "
        f"loop lag p99 {f['event_loop_lag_p99_ms']:.0f} ms (peak {f['event_loop_lag_peak_ms']:.0f} ms), "
        f"p50 {f['p50_ms'] / 1000:.1f} s"
    )
    lines.append("3. image path, ms (best of runs): " + ", ".join(f"{k} {v:.1f}" for k, v in r["micro_ms"].items()))
    lines.append("4. policy decision, us: " + ", ".join(f"{k} {v:.1f}" for k, v in r["decision_us"].items()))
    lines.append("5. issue 15 targets")
    lines += [f"   {t['target']:<48} {t['value']:>9.2f}  {_verdict(t['met'])}" for t in r["targets"]]
    for name, v in r["arms"].items():
        if "profile" in v:
            p = v["profile"]
            lines.append(f"6. profile {name}: {p['working_samples']} working samples ({p['waiting_samples']} waiting "
                         f"left out), {p['collapsed_stacks']}; innermost Python frame, share:")  # fmt: skip
            lines += [f"   {share * 100:5.1f}%  {frame}" for frame, share in p["python"]]
    return "\n".join(lines)
