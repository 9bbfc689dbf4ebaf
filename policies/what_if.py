"""What a candidate policy would have done with past edits: the replay and its arithmetic, pure.

Each recorded edit's features go through :func:`policies.engine.decide` with the candidate policy, so
the new route (rule, first candidate, refusal, dropped candidates) is exactly what a request with those
features would get. Nothing else is exact, and the report says so:

- **before** is what the edit cost: its billed ledger rows at actual cost (the estimate where the
  provider's usage had no price).
- **after** is the same number when the first candidate stays the same provider; otherwise the
  candidate provider's estimate at today's prices (``estimates``, computed by the caller from the
  edit's recorded sizes, with the candidate policy's model); 0 when the candidate refuses the edit.
- **after_interval95** is a normal approximation of what those moved edits would really be billed.
  Per provider, the observed ratios r = actual / estimate of its successful calls give a mean m and
  a standard deviation s; a group of moved edits with estimates e_i is centred on m * sum(e_i) with
  variance s^2 * sum(e_i^2) (each edit's own spread) + s^2 / n * (sum e_i)^2 (the mean's uncertainty
  from n observations). A provider observed fewer than twice borrows the spread of every provider's
  ratios pooled (and a never-observed one is centred on its estimate, m = 1); with no spread
  observed at all the interval is a point. The interval is centre +- 1.96 sd, floored at 0. Unchanged
  and refused edits add no uncertainty: their cost is recorded (or nothing).

Breakers are taken as closed and budgets as unspent: a replay asks what the policy decides, not what
the gateway's state on that day would have added.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from policies.capabilities import Capabilities
from policies.engine import decide
from policies.features import Features
from policies.model import Policy, RouteDecision

Z95 = statistics.NormalDist().inv_cdf(0.975)
NOT_CAPABILITIES = frozenset({"not configured on this gateway", "disabled by policy", "circuit breaker open"})
"""Drop reasons that are not a missing capability (see ``engine._screen``)."""


@dataclass(frozen=True, slots=True)
class PastEdit:
    """One recorded edit, as the replay needs it."""

    features: Features
    rule: str
    """The rule that routed it."""
    provider: str
    """Its first candidate: the provider the recorded decision chose (a fallback may have served it)."""
    before_usd: float
    estimates: Mapping[str, float | None]
    """Today's estimate of this edit on each provider, with the candidate policy's models."""
    keys: Mapping[str, str | None] = field(default_factory=dict)
    """Sticky experiment keys (tenant, session, key), so an experiment's arm replays exactly."""
    before_estimated: bool = False
    """``before_usd`` holds an estimate: a billed call had no actual cost."""


@dataclass(frozen=True, slots=True)
class Observed:
    """What the ledger saw of one provider in the window."""

    calls: int = 0
    failures: int = 0
    latencies_ms: Sequence[float] = ()
    """Provider latency of its successful calls."""
    ratios: Sequence[float] = ()
    """actual / estimate of its successful calls with both known and the estimate above 0."""


@dataclass(frozen=True, slots=True)
class Replayed:
    """One edit's new route and cost."""

    edit: PastEdit
    rule: str
    provider: str | None
    refusal: str | None
    capability_drops: frozenset[str]
    """Capabilities for which the candidate's route dropped a provider, on an edit whose route it changes
    (an unchanged route causes nothing new)."""
    after_usd: float
    estimated: bool
    """``after_usd`` is today's price-table estimate: the edit moved to another provider."""
    unpriced: bool = False
    """It moved to a provider whose model has no price (counted as 0)."""

    @property
    def changed(self) -> bool:
        return (self.rule, self.provider) != (self.edit.rule, self.edit.provider)


def capability_of(reason: str) -> str | None:
    """The capability a drop reason names (``"transparent (background=transparent)"`` -> ``transparent``)."""
    return None if reason in NOT_CAPABILITIES else reason.split(" (")[0]


def replay(edit: PastEdit, decision: RouteDecision) -> Replayed:
    """Compare one edit's recorded route with the candidate's ``decision`` and price the new one."""
    first = decision.candidates[0].provider if decision.candidates else None
    moved = (decision.rule, first) != (edit.rule, edit.provider)
    drops = (
        frozenset(cap for d in decision.dropped for reason in d.reasons if (cap := capability_of(reason)) is not None)
        if moved
        else frozenset()
    )
    refusal = decision.refusal.code if decision.refusal else None
    if first is None:
        return Replayed(edit, decision.rule, None, refusal, drops, 0.0, estimated=False)
    if first == edit.provider:
        return Replayed(edit, decision.rule, first, refusal, drops, edit.before_usd, estimated=False)
    estimate = edit.estimates.get(first)
    return Replayed(edit, decision.rule, first, refusal, drops, estimate or 0.0, estimated=True,
                    unpriced=estimate is None)  # fmt: skip


def replay_all(edits: Iterable[PastEdit], policy: Policy, capabilities: Mapping[str, Capabilities],
               forced_provider: str | None = None) -> list[Replayed]:  # fmt: skip
    """Every edit through ``decide()`` with the candidate ``policy``; breakers closed, budgets unspent."""
    return [
        replay(
            edit,
            decide(
                edit.features,
                policy,
                forced_provider=forced_provider,
                capabilities=capabilities,
                estimates=edit.estimates,
                keys=edit.keys,
            ),
        )
        for edit in edits
    ]


def _mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    if not values:
        return 1.0, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) >= 2 else None


def interval95(fixed_usd: float, moved: Mapping[str, Sequence[float]], observed: Mapping[str, Observed]
               ) -> tuple[float, float]:  # fmt: skip
    """The 95 % interval of the total after the move (see the module docstring).

    ``fixed_usd``: cost that carries no uncertainty (unchanged edits, refusals); ``moved``: per provider,
    the estimates of the edits moved to it."""
    pooled = [r for o in observed.values() for r in o.ratios]
    pooled_sd = statistics.stdev(pooled) if len(pooled) >= 2 else 0.0
    centre, variance = fixed_usd, 0.0
    for provider, estimates in moved.items():
        if not estimates:
            continue
        ratios = observed.get(provider, Observed()).ratios
        mean, sd = _mean_sd(ratios)
        n = max(len(ratios), 1)
        spread = sd if sd is not None else pooled_sd
        total, squares = math.fsum(estimates), math.fsum(e * e for e in estimates)
        centre += mean * total
        variance += spread**2 * squares + spread**2 / n * total**2
    half = Z95 * math.sqrt(variance)
    return max(0.0, centre - half), max(0.0, centre + half)


def _usd(value: float) -> float:
    return round(value, 6)


def _percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), without numpy."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (pos - low), 1)


def _rule_order(policy: Policy) -> dict[str, int]:
    return {name: i for i, name in enumerate([*(r.name for r in policy.rules), "default"])}


def summarize(replays: Sequence[Replayed], policy: Policy, observed: Mapping[str, Observed]) -> dict[str, object]:
    """The report's numbers (everything but the window): moves, costs, refusals, drops, providers, estimates."""
    moves = Counter((r.edit.rule, r.edit.provider, r.rule, r.provider) for r in replays if r.changed)
    before = math.fsum(r.edit.before_usd for r in replays)
    after = math.fsum(r.after_usd for r in replays)
    fixed = math.fsum(r.after_usd for r in replays if not r.estimated)
    moved: dict[str, list[float]] = defaultdict(list)
    for r in replays:
        if r.estimated and r.provider is not None:
            moved[r.provider].append(r.after_usd)
    low, high = interval95(fixed, moved, observed)
    per_rule: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for r in replays:
        row = per_rule[r.rule]
        row[0] += 1
        row[1] += r.edit.before_usd
        row[2] += r.after_usd
    order = _rule_order(policy)
    before_counts = Counter(r.edit.provider for r in replays)
    after_counts = Counter(r.provider for r in replays if r.provider is not None)
    providers = sorted(set(before_counts) | set(after_counts))
    return {
        "edits": len(replays),
        "unchanged": sum(not r.changed for r in replays),
        "changed": sum(r.changed for r in replays),
        "moves": [
            {"from": {"rule": fr, "provider": fp}, "to": {"rule": tr, "provider": tp}, "count": n}
            for (fr, fp, tr, tp), n in sorted(moves.items(), key=lambda m: (-m[1], str(m[0])))
        ],
        "cost": {
            "before_usd": _usd(before),
            "after_usd": _usd(after),
            "delta_usd": _usd(after - before),
            "after_interval95_usd": [_usd(low), _usd(high)],
            "per_rule": [
                {"rule": rule, "edits": int(n), "before_usd": _usd(b), "after_usd": _usd(a)}
                for rule, (n, b, a) in sorted(per_rule.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
            ],
        },
        "refusals": _counted(Counter(r.refusal for r in replays if r.refusal), "code"),
        "capability_drops": _counted(Counter(c for r in replays for c in r.capability_drops), "capability"),
        "providers": [
            {
                "provider": name,
                "edits_before": before_counts[name],
                "edits_after": after_counts[name],
                "observed": _observed(observed.get(name, Observed())),
            }
            for name in providers
        ],
        "estimates": _estimate_notes(replays, observed),
    }


def _counted(counts: Counter[str | None], key: str) -> list[dict[str, object]]:
    return [{key: name, "count": n} for name, n in sorted(counts.items(), key=lambda c: (-c[1], str(c[0])))]


def _observed(o: Observed) -> dict[str, object]:
    return {
        "edits": o.calls,
        "p50_ms": _percentile(o.latencies_ms, 50),
        "p95_ms": _percentile(o.latencies_ms, 95),
        "failure_rate": round(o.failures / o.calls, 4) if o.calls else None,
    }


def _estimate_notes(replays: Sequence[Replayed], observed: Mapping[str, Observed]) -> list[str]:
    """Which numbers are estimates, in words."""
    notes = ["Routes are exact: each edit's recorded features went through the candidate policy's decision."]
    served = {r.edit.provider for r in replays}
    moved = Counter(r.provider for r in replays if r.estimated and r.provider is not None)
    for provider, n in sorted(moved.items()):
        never = provider not in served
        seen = len(observed.get(provider, Observed()).ratios)
        who = "never served these edits" if never else "served other edits in this window"
        spread = (f"its interval uses the spread of {seen} observed actual/estimate ratios" if seen >= 2
                  else "its interval borrows the spread observed on other providers")  # fmt: skip
        notes.append(f"{provider} {who}: the cost of the {n} edit(s) moved to it is today's price table, "
                     f"not observed; {spread}.")  # fmt: skip
    unpriced = sum(r.unpriced for r in replays)
    if unpriced:
        notes.append(f"{unpriced} moved edit(s) have no price (a model missing from the price table): counted as $0.")
    if any(r.edit.before_estimated for r in replays):
        notes.append("Some 'before' costs are the recorded estimate: their usage had no price when they ran.")
    if any(r.provider is None for r in replays):
        notes.append("Edits the candidate refuses count $0 after: no provider would be called.")
    notes.append("Breakers are taken as closed and budgets as unspent; latency and failure rates are observed, "
                 "in this window, from the ledger.")  # fmt: skip
    return notes
