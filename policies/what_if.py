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
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
               forced_provider: str | None = None) -> Iterator[Replayed]:  # fmt: skip
    """Each edit through ``decide()`` with the candidate ``policy``, one at a time; breakers closed, budgets
    unspent."""
    for edit in edits:
        decision = decide(edit.features, policy, forced_provider=forced_provider, capabilities=capabilities,
                          estimates=edit.estimates, keys=edit.keys)  # fmt: skip
        yield replay(edit, decision)


def _mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    if not values:
        return 1.0, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) >= 2 else None


@dataclass(slots=True)
class Moved:
    """The edits moved to one provider, as the interval needs them: their estimates' sum and sum of squares."""

    count: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, estimate: float) -> None:
        self.count += 1
        self.total += estimate
        self.squares += estimate * estimate


def interval95(fixed_usd: float, moved: Mapping[str, Moved], observed: Mapping[str, Observed]) -> tuple[float, float]:
    """The 95 % interval of the total after the move (see the module docstring).

    ``fixed_usd``: cost that carries no uncertainty (unchanged edits, refusals); ``moved``: per provider,
    the estimates of the edits moved to it."""
    pooled = [r for o in observed.values() for r in o.ratios]
    pooled_sd = statistics.stdev(pooled) if len(pooled) >= 2 else 0.0
    centre, variance = fixed_usd, 0.0
    for provider, group in moved.items():
        ratios = observed.get(provider, Observed()).ratios
        mean, sd = _mean_sd(ratios)
        n = max(len(ratios), 1)
        spread = sd if sd is not None else pooled_sd
        centre += mean * group.total
        variance += spread**2 * group.squares + spread**2 / n * group.total**2
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


@dataclass(slots=True)
class Tally:
    """The report's running totals: replays are added one at a time and dropped, so memory does not grow
    with the number of edits."""

    edits: int = 0
    changed: int = 0
    before: float = 0.0
    after: float = 0.0
    fixed: float = 0.0
    moves: Counter[tuple[str, str, str, str | None]] = field(default_factory=Counter)
    moved: dict[str, Moved] = field(default_factory=lambda: defaultdict(Moved))
    per_rule: dict[str, list[float]] = field(default_factory=lambda: defaultdict(lambda: [0, 0.0, 0.0]))
    before_counts: Counter[str] = field(default_factory=Counter)
    after_counts: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    drops: Counter[str] = field(default_factory=Counter)
    unpriced: int = 0
    before_estimated: int = 0
    refused: int = 0

    def add(self, r: Replayed) -> None:
        self.edits += 1
        self.before += r.edit.before_usd
        self.after += r.after_usd
        if r.changed:
            self.changed += 1
            self.moves[(r.edit.rule, r.edit.provider, r.rule, r.provider)] += 1
        if r.estimated and r.provider is not None:
            self.moved[r.provider].add(r.after_usd)
        else:
            self.fixed += r.after_usd
        row = self.per_rule[r.rule]
        row[0] += 1
        row[1] += r.edit.before_usd
        row[2] += r.after_usd
        self.before_counts[r.edit.provider] += 1
        if r.provider is None:
            self.refused += 1
        else:
            self.after_counts[r.provider] += 1
        if r.refusal:
            self.refusals[r.refusal] += 1
        self.drops.update(r.capability_drops)
        self.unpriced += r.unpriced
        self.before_estimated += r.edit.before_estimated

    def report(self, policy: Policy, observed: Mapping[str, Observed]) -> dict[str, object]:
        """The report's numbers (everything but the window): moves, costs, refusals, drops, providers, estimates."""
        low, high = interval95(self.fixed, self.moved, observed)
        order = _rule_order(policy)
        return {
            "edits": self.edits,
            "unchanged": self.edits - self.changed,
            "changed": self.changed,
            "moves": [
                {"from": {"rule": fr, "provider": fp}, "to": {"rule": tr, "provider": tp}, "count": n}
                for (fr, fp, tr, tp), n in sorted(self.moves.items(), key=lambda m: (-m[1], str(m[0])))
            ],
            "cost": {
                "before_usd": _usd(self.before),
                "after_usd": _usd(self.after),
                "delta_usd": _usd(self.after - self.before),
                "after_interval95_usd": [_usd(low), _usd(high)],
                "per_rule": [
                    {"rule": rule, "edits": int(n), "before_usd": _usd(b), "after_usd": _usd(a)}
                    for rule, (n, b, a) in sorted(
                        self.per_rule.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])
                    )
                ],
            },
            "refusals": _counted(self.refusals, "code"),
            "capability_drops": _counted(self.drops, "capability"),
            "providers": [
                {
                    "provider": name,
                    "edits_before": self.before_counts[name],
                    "edits_after": self.after_counts[name],
                    "observed": _observed(observed.get(name, Observed())),
                }
                for name in sorted(set(self.before_counts) | set(self.after_counts))
            ],
            "estimates": self._notes(observed),
        }

    def _notes(self, observed: Mapping[str, Observed]) -> list[str]:
        """Which numbers are estimates, in words."""
        notes = ["Routes are exact: each edit's recorded features went through the candidate policy's decision."]
        for provider, group in sorted(self.moved.items()):
            who = "served other edits in this window" if provider in self.before_counts else "never served these edits"
            seen = len(observed.get(provider, Observed()).ratios)
            spread = (f"its interval uses the spread of {seen} observed actual/estimate ratios" if seen >= 2
                      else "its interval borrows the spread observed on other providers")  # fmt: skip
            notes.append(f"{provider} {who}: the cost of the {group.count} edit(s) moved to it is today's price "
                         f"table, not observed; {spread}.")  # fmt: skip
        if self.unpriced:
            notes.append(f"{self.unpriced} moved edit(s) have no price (a model missing from the price table): "
                         "counted as $0.")  # fmt: skip
        if self.before_estimated:
            notes.append("Some 'before' costs are the recorded estimate: their usage had no price when they ran.")
        if self.refused:
            notes.append("Edits the candidate refuses count $0 after: no provider would be called.")
        notes.append("Breakers are taken as closed and budgets as unspent; latency and failure rates are observed, "
                     "in this window, from the ledger.")  # fmt: skip
        return notes


def summarize(replays: Iterable[Replayed], policy: Policy, observed: Mapping[str, Observed]) -> dict[str, object]:
    """:class:`Tally` over ``replays``."""
    tally = Tally()
    for r in replays:
        tally.add(r)
    return tally.report(policy, observed)


def _counted(counts: Counter[str | None], key: str) -> list[dict[str, object]]:
    return [{key: name, "count": n} for name, n in sorted(counts.items(), key=lambda c: (-c[1], str(c[0])))]


def _observed(o: Observed) -> dict[str, object]:
    return {
        "edits": o.calls,
        "p50_ms": _percentile(o.latencies_ms, 50),
        "p95_ms": _percentile(o.latencies_ms, 95),
        "failure_rate": round(o.failures / o.calls, 4) if o.calls else None,
    }
