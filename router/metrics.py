"""Prometheus metrics, one registry per app. Labels never carry a prompt or an id, and carry the
tenant only when an operator turns ``EDITGATE_METRICS_TENANT_LABELS`` on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from itertools import pairwise

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from router.models import Attempt

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180)
MEGAPIXEL_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32)
BYTES_BUCKETS = (64e3, 256e3, 1e6, 4e6, 16e6, 64e6)
BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}
ALERT_OUTCOMES = frozenset({"provider_auth_failed", "provider_quota_exhausted"})
"""Attempt outcomes no retry fixes (bad credentials, billing exhausted): an operator must act."""


class Metrics:
    def __init__(self, tenant_labels: bool = False) -> None:
        self.registry = r = CollectorRegistry()
        self.tenant_labels = tenant_labels
        t = ("tenant",) if tenant_labels else ()
        self.requests = Counter(
            "editgate_requests", "Edits by outcome", ("provider", "model", "rule", "outcome", *t), registry=r
        )
        self.total_latency = Histogram(
            "editgate_request_latency_seconds",
            "Edit latency, end to end",
            ("outcome",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.provider_latency = Histogram(
            "editgate_provider_latency_seconds",
            "One provider attempt",
            ("provider", "model", "outcome"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cost = Counter("editgate_cost_usd", "Actual cost in USD", ("provider", "model", *t), registry=r)
        self.cost_unknown = Counter(
            "editgate_cost_unknown", "Edits whose model has no price", ("provider", "model"), registry=r
        )
        self.tokens = Counter("editgate_tokens", "Tokens by kind", ("provider", "model", "kind"), registry=r)
        self.image_tokens = Counter(
            "editgate_image_tokens", "Image tokens by direction", ("provider", "direction"), registry=r
        )
        self.fallbacks = Counter(
            "editgate_fallbacks", "Moves to the next candidate", ("from_provider", "to_provider", "reason"), registry=r
        )
        self.provider_alerts = Counter(
            "editgate_provider_alerts",
            "Provider calls refused for a reason an operator must fix (bad credentials, billing quota exhausted)",
            ("provider", "reason"),
            registry=r,
        )
        self.decisions = Counter("editgate_route_decisions", "Route decisions by rule", ("rule",), registry=r)
        self.arms = Counter(
            "editgate_experiment_assignments", "Experiment arms assigned", ("experiment", "arm"), registry=r
        )
        self.in_flight = Gauge("editgate_in_flight_edits", "Edits being processed", registry=r)
        self.breaker = Gauge("editgate_breaker_state", "0 closed, 1 half-open, 2 open", ("provider",), registry=r)
        self.request_bytes = Histogram(
            "editgate_request_image_bytes", "Uploaded image bytes per edit", buckets=BYTES_BUCKETS, registry=r
        )
        self.loop_lag = Gauge("editgate_event_loop_lag_seconds", "Worst event-loop lag in the last second", registry=r)
        self.loop_lag_peak = Gauge(
            "editgate_event_loop_lag_peak_seconds", "Worst event-loop lag since start", registry=r
        )
        self._peak = 0.0
        self.dependency_up = Gauge(
            "editgate_dependency_up", "1: the dependency answers; 0: it does not", ("dependency",), registry=r
        )
        self.megapixels = Histogram(
            "editgate_image_megapixels", "Image size", ("direction",), buckets=MEGAPIXEL_BUCKETS, registry=r
        )

    def _tenant(self, tenant: str | None) -> tuple[str, ...]:
        return (tenant or "",) if self.tenant_labels else ()

    def decided(self, rule: str, experiment: str | None, arm: str | None) -> None:
        self.decisions.labels(rule).inc()
        if experiment and arm:
            self.arms.labels(experiment, arm).inc()

    def attempted(self, attempts: Iterable[Attempt]) -> None:
        made = [a for a in attempts if a.outcome != "skipped_circuit_open"]
        for a in made:
            if a.outcome in ALERT_OUTCOMES:
                self.provider_alerts.labels(a.provider, a.outcome).inc()
            self.provider_latency.labels(a.provider, a.model, "ok" if a.outcome == "ok" else "error").observe(
                a.latency_ms / 1000
            )
        for before, after in pairwise(made):
            if before.outcome != "ok" and after.provider != before.provider:
                self.fallbacks.labels(before.provider, after.provider, before.outcome).inc()

    def finished(
        self, *, provider: str, model: str, rule: str, outcome: str, total_s: float, tenant: str | None
    ) -> None:
        self.requests.labels(provider, model, rule, outcome, *self._tenant(tenant)).inc()
        self.total_latency.labels("ok" if outcome == "ok" else "error").observe(total_s)

    def billed(
        self, provider: str, model: str, usage: Mapping[str, int], actual_usd: float | None, tenant: str | None
    ) -> None:
        if actual_usd is None:
            self.cost_unknown.labels(provider, model).inc()
        else:
            self.cost.labels(provider, model, *self._tenant(tenant)).inc(actual_usd)
        for kind, count in usage.items():
            self.tokens.labels(provider, model, kind).inc(count)
        for direction in ("input", "output"):
            if count := usage.get(f"{direction}_image_tokens", 0):
                self.image_tokens.labels(provider, direction).inc(count)

    def images(self, upload_bytes: int, megapixels_in: float, megapixels_out: Iterable[float]) -> None:
        self.request_bytes.observe(upload_bytes)
        self.megapixels.labels("input").observe(megapixels_in)
        for mp in megapixels_out:
            self.megapixels.labels("output").observe(mp)

    async def watch_loop_lag(self, interval_s: float = 0.05) -> None:
        """How late the event loop wakes up: blocking work on the loop shows here first."""
        worst, window_start = 0.0, time.monotonic()
        while True:
            before = time.monotonic()
            await asyncio.sleep(interval_s)
            now = time.monotonic()
            worst = max(worst, now - before - interval_s)
            if now - window_start >= 1.0:
                self.loop_lag.set(worst)
                if worst > self._peak:
                    self._peak = worst
                    self.loop_lag_peak.set(worst)
                worst, window_start = 0.0, now

    def exposition(self, breaker_states: Mapping[str, str]) -> bytes:
        for provider, state in breaker_states.items():
            self.breaker.labels(provider).set(BREAKER_VALUE[state])
        return generate_latest(self.registry)
