"""Experiment reports from the ledger: per arm, and each arm against the baseline with 95% intervals.

Pure arithmetic on rows, so the API, the CLI and a test that recomputes it all agree. One unit is one
version (an edit): its attempts share an arm; it succeeded if any attempt did.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel

Z95 = 1.959964


class ArmStats(BaseModel):
    arm: str
    count: int
    succeeded: int
    success_rate: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    cost_mean_usd: float | None
    cost_total_usd: float
    feedback_count: int
    acceptance_rate: float | None
    preservation_mean: float | None


class Difference(BaseModel):
    arm: str
    versus: str
    acceptance_diff: float | None
    acceptance_ci95: tuple[float, float] | None
    cost_diff_usd: float | None
    cost_ci95: tuple[float, float] | None


class Report(BaseModel):
    experiment: str
    edits: int
    baseline: str | None
    arms: list[ArmStats]
    differences: list[Difference]


def accepted(verdict: str | None, rating: int | None) -> bool | None:
    """A verdict decides; without one, a rating of 4-5 counts as accepted and 1-3 as rejected."""
    if verdict in ("accepted", "rejected"):
        return verdict == "accepted"
    return None if rating is None else rating >= 4


def _units(attempts: Iterable[Any], feedback: Mapping[str, Any], versions: Mapping[str, Any]) -> dict[str, list[dict]]:
    by_version: dict[str, list[Any]] = defaultdict(list)
    for a in attempts:
        if a.version_id and a.arm:
            by_version[a.version_id].append(a)
    arms: dict[str, list[dict]] = defaultdict(list)
    for vid, rows in by_version.items():
        ok = [a for a in rows if a.outcome == "ok"]
        cost = sum(a.actual_usd for a in ok if a.actual_usd is not None) if ok else 0.0
        fb = feedback.get(vid)
        version = versions.get(vid)
        pres = ((version.result or {}).get("preservation") or {}).get("mean_abs_diff") if version and ok else None
        arms[rows[0].arm].append({
            "ok": bool(ok),
            "latency": ok[0].total_ms if ok and ok[0].total_ms is not None else None,
            "cost": cost,
            "accepted": accepted(fb.verdict, fb.rating) if fb else None,
            "preservation": pres,
        })  # fmt: skip
    return arms


def _stats(arm: str, units: list[dict]) -> ArmStats:
    latencies = [u["latency"] for u in units if u["latency"] is not None]
    costs = [u["cost"] for u in units if u["ok"]]
    verdicts = [u["accepted"] for u in units if u["accepted"] is not None]
    pres = [u["preservation"] for u in units if u["preservation"] is not None]
    succeeded = sum(u["ok"] for u in units)
    return ArmStats(
        arm=arm,
        count=len(units),
        succeeded=succeeded,
        success_rate=succeeded / len(units),
        latency_p50_ms=float(np.percentile(latencies, 50)) if latencies else None,
        latency_p95_ms=float(np.percentile(latencies, 95)) if latencies else None,
        cost_mean_usd=float(np.mean(costs)) if costs else None,
        cost_total_usd=float(sum(costs)),
        feedback_count=len(verdicts),
        acceptance_rate=sum(verdicts) / len(verdicts) if verdicts else None,
        preservation_mean=float(np.mean(pres)) if pres else None,
    )


def _diff_ci(a: list[float], b: list[float], proportion: bool) -> tuple[float, tuple[float, float]] | None:
    """a - b with a normal-approximation 95% interval (two proportions, or Welch for means)."""
    if len(a) < 2 or len(b) < 2:
        return None
    ma, mb = float(np.mean(a)), float(np.mean(b))
    if proportion:
        se = math.sqrt(ma * (1 - ma) / len(a) + mb * (1 - mb) / len(b))
    else:
        se = math.sqrt(float(np.var(a, ddof=1)) / len(a) + float(np.var(b, ddof=1)) / len(b))
    diff = ma - mb
    return diff, (diff - Z95 * se, diff + Z95 * se)


def build_report(experiment: str, attempts: Iterable[Any], feedback: Mapping[str, Any],
                 versions: Mapping[str, Any]) -> Report:  # fmt: skip
    arms = _units(attempts, feedback, versions)
    names = sorted(arms)
    baseline = "primary" if "primary" in arms else (names[0] if names else None)
    differences = []
    for name in names:
        if name == baseline or baseline is None:
            continue
        base, other = arms[baseline], arms[name]
        acc = _diff_ci([float(u["accepted"]) for u in other if u["accepted"] is not None],
                       [float(u["accepted"]) for u in base if u["accepted"] is not None], proportion=True)  # fmt: skip
        cost = _diff_ci([u["cost"] for u in other if u["ok"]], [u["cost"] for u in base if u["ok"]], proportion=False)
        differences.append(Difference(
            arm=name, versus=baseline,
            acceptance_diff=acc[0] if acc else None, acceptance_ci95=acc[1] if acc else None,
            cost_diff_usd=cost[0] if cost else None, cost_ci95=cost[1] if cost else None,
        ))  # fmt: skip
    return Report(
        experiment=experiment,
        edits=sum(len(u) for u in arms.values()),
        baseline=baseline,
        arms=[_stats(n, arms[n]) for n in names],
        differences=differences,
    )


def render(report: Report) -> str:
    """A table a person can decide from."""

    def f(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    lines = [f"experiment {report.experiment}: {report.edits} edits, baseline {report.baseline}", ""]
    lines.append(f"{'arm':<16}{'n':>6}{'ok%':>7}{'p50 ms':>9}{'p95 ms':>9}{'mean $':>10}{'total $':>10}"
                 f"{'accept%':>9}{'fb n':>6}{'drift':>8}")  # fmt: skip
    for a in report.arms:
        lines.append(
            f"{a.arm:<16}{a.count:>6}{a.success_rate * 100:>7.1f}{f(a.latency_p50_ms, '.0f'):>9}"
            f"{f(a.latency_p95_ms, '.0f'):>9}{f(a.cost_mean_usd, '.4f'):>10}{a.cost_total_usd:>10.4f}"
            f"{f(a.acceptance_rate and a.acceptance_rate * 100, '.1f'):>9}{a.feedback_count:>6}"
            f"{f(a.preservation_mean, '.2f'):>8}"
        )
    for d in report.differences:
        acc = "-" if d.acceptance_diff is None else (
            f"{d.acceptance_diff * 100:+.1f} pts [{d.acceptance_ci95[0] * 100:+.1f}, {d.acceptance_ci95[1] * 100:+.1f}]"  # type: ignore[index]
        )  # fmt: skip
        cost = "-" if d.cost_diff_usd is None else (
            f"{d.cost_diff_usd:+.4f} $ [{d.cost_ci95[0]:+.4f}, {d.cost_ci95[1]:+.4f}]"  # type: ignore[index]
        )  # fmt: skip
        lines.append(f"{d.arm} vs {d.versus}: acceptance {acc}; cost per edit {cost}  (95% CI)")
    return "\n".join(lines)
