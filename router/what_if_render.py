"""The what-if report as a person reads it in a terminal (``editgate what-if``)."""

from __future__ import annotations

from typing import Any


def _route(end: dict[str, Any]) -> str:
    return f"{end['rule'] or '-'} / {end['provider'] or 'REFUSED'}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def render(report: dict[str, Any]) -> str:
    """A summary: the window, counts, moves, cost (per rule), refusals, drops, providers, estimates."""
    cost, window, policy = report["cost"], report["window"], report["policy"]
    low, high = cost["after_interval95_usd"]
    lines = [
        f"what-if: policy {policy['version']} ({policy['digest']}) over {report['edits']} edits "
        f"from {window['since']} to {window['until']}",
        f"  unchanged {report['unchanged']}, changed {report['changed']}",
        "",
        "moves:" if report["moves"] else "moves: none",
        *(f"  {m['count']:>6}  {_route(m['from'])}  ->  {_route(m['to'])}" for m in report["moves"]),
        "",
        f"cost: before ${cost['before_usd']:.4f}  after ${cost['after_usd']:.4f} (95% ${low:.4f} to ${high:.4f})"
        f"  delta {'+' if cost['delta_usd'] >= 0 else '-'}${abs(cost['delta_usd']):.4f}",
        f"  {'rule':<24}{'edits':>7}{'before $':>12}{'after $':>12}",
        *(f"  {r['rule']:<24}{r['edits']:>7}{r['before_usd']:>12.4f}{r['after_usd']:>12.4f}" for r in cost["per_rule"]),
        "",
        "refusals: " + (", ".join(f"{r['code']} {r['count']}" for r in report["refusals"]) or "none"),
        "capability drops: "
        + (", ".join(f"{d['capability']} {d['count']}" for d in report["capability_drops"]) or "none"),
        "",
        f"  {'provider':<20}{'before':>7}{'after':>7}   observed: {'calls':>6}{'p50 ms':>9}{'p95 ms':>9}{'fail %':>8}",
    ]
    for p in report["providers"]:
        seen = p["observed"]
        fail = "-" if seen["failure_rate"] is None else f"{100 * seen['failure_rate']:.1f}"
        lines.append(
            f"  {p['provider']:<20}{p['edits_before']:>7}{p['edits_after']:>7}             {seen['edits']:>6}"
            f"{_ms(seen['p50_ms']):>9}{_ms(seen['p95_ms']):>9}{fail:>8}"
        )
    lines += ["", "estimates:", *(f"  - {note}" for note in report["estimates"])]
    return "\n".join(lines)
