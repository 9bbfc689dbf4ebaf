"""Try a decision's candidates in order under one deadline, keeping every attempt for the trace.

- ``RateLimited``: wait ``retry-after`` (within the deadline) and retry the same provider, up to its
  retry budget; then the next candidate.
- ``Unavailable``: the next candidate at once; the last candidate is retried with backoff.
- ``Unavailable(ambiguous)`` (read timeout: it may have rendered and billed): stop, unless the route
  allows ambiguous retries, so an expensive render is not paid for twice by accident.
- ``Rejected`` (safety): stop and tell the caller, unless the route opts into a fallback.
- ``InvalidForProvider``: the next candidate. ``AuthError`` (and ``QuotaExhausted``: billing that ran out,
  or a per-day quota, then until it resets): trip the breaker, log an alert, next candidate.
- ``InvalidInput`` (an input no provider could use, such as an image that does not decode): stop.
A provider whose breaker is open is skipped without a call, and so is a fallback whose estimate is above
the request's ``max_cost_usd`` (:mod:`router.costs`).

A call the route deadline (or a cancellation) cuts short counts as a breaker failure and is kept as an
``ambiguous`` attempt, like a read timeout: the provider may have rendered and billed it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import anyio
import structlog

from policies.model import Candidate, RouteDecision
from providers.base import EditJob, Provider, ProviderResult
from providers.errors import (
    AuthError,
    InvalidInput,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    Rejected,
    Unavailable,
)
from router.breaker import Breakers
from router.costs import SKIPPED_OVER_CAP, cap_refusal, over_cap
from router.errors import ApiError
from router.limits import Limits, LocalLimits, ProviderLimit
from router.limits.base import slot
from router.models import Attempt
from router.tracing import traced_attempt

log = structlog.get_logger("editgate.executor")
_STATUS = {
    "provider_rate_limited": 429,
    "provider_unavailable": 502,
    "provider_timeout": 504,
    "provider_rejected": 422,
    "invalid_for_provider": 422,
    "invalid_image": 422,
    "provider_auth_failed": 502,
    "provider_quota_exhausted": 502,  # 429 when the quota resets at a known time (a per-day quota)
    "provider_error": 502,
}
MAX_BACKOFF_S = 8.0
AMBIGUOUS = "ambiguous"
"""The outcome of an attempt that may have been billed though no answer came (read timeout, deadline)."""


@dataclass(slots=True)
class Outcome:
    result: ProviderResult
    candidate: Candidate
    attempts: list[Attempt]
    provider_ms: float
    queue_ms: float = 0.0


@dataclass(slots=True)
class ExecutionFailed(Exception):
    error: ApiError
    attempts: list[Attempt] = field(default_factory=list)


@dataclass(slots=True)
class Resources:
    """What execution shares across requests: breakers, call slots and rate limits, retry budgets."""

    breakers: Breakers
    limits: Limits = field(default_factory=LocalLimits)
    """This process's or, with ``REDIS_URL``, every replica's (see :mod:`router.limits`)."""
    max_concurrency: Mapping[str, int] = field(default_factory=dict)
    retries: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_concurrency:
            self.limits.configure({name: ProviderLimit(n) for name, n in self.max_concurrency.items()})

    def slot(self, provider: str, images: int = 1) -> contextlib.AbstractAsyncContextManager[None]:
        """A call slot of ``provider`` (and room in its per-minute rates) for the length of a block."""
        return slot(self.limits, provider, images)


def _failure(exc: ProviderError, attempts: list[Attempt]) -> ExecutionFailed:
    extra: dict[str, object] = {"provider": exc.provider}
    if exc.request_id:
        extra["provider_request_id"] = exc.request_id
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        extra["retry_after"] = exc.retry_after
    if isinstance(exc, QuotaExhausted) and exc.reset_after is not None:
        extra["retry_after"] = round(exc.reset_after)
    code, message = exc.code, f"{exc.provider or 'provider'}: {exc.message}"
    if isinstance(exc, Unavailable) and exc.ambiguous:
        code = "provider_timeout"
        message += " (it may have rendered and billed; not retried, as this route does not allow it)"
    param = exc.param if isinstance(exc, InvalidInput) else None
    status = 429 if isinstance(exc, QuotaExhausted) and exc.reset_after is not None else _STATUS.get(code, 502)
    return ExecutionFailed(ApiError(status, code, message, param, **extra), attempts)


def _backoff(tries: int) -> float:
    return min(MAX_BACKOFF_S, 0.5 * 2**tries)


async def execute(
    decision: RouteDecision,
    providers: Mapping[str, Provider],
    job_for: Callable[[Candidate], EditJob],
    deadline_s: float,
    resources: Resources,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    attempts: list[Attempt] | None = None,
    on_attempt: Callable[[Attempt], None] | None = None,
    held: str | None = None,
    on_call: Callable[[Candidate], Awaitable[None]] | None = None,
    max_cost_usd: float | None = None,
) -> Outcome:
    """``attempts``: the list to append each attempt to, so a caller that is itself cancelled still
    has the trace (and can ledger a call that may have billed). ``on_attempt`` sees each one as it is recorded.
    ``held``: the provider whose concurrency slot the caller already holds for this whole run (a queued
    edit takes it before its claim): its calls do not take a second one. ``on_call`` is awaited before a call
    to another candidate than the last one called (the first is named by the version already): a fallback
    costs one write, a run without one none. ``max_cost_usd``: candidates estimated above it are not called."""
    attempts = [] if attempts is None else attempts

    def note_attempt(attempt: Attempt) -> None:
        attempts.append(attempt)
        if on_attempt is not None:
            on_attempt(attempt)

    last: ProviderError | None = None
    provider_ms = queue_ms = 0.0
    ends = time.monotonic() + deadline_s
    named = decision.candidates[0] if decision.candidates else None
    try:
        with anyio.fail_after(deadline_s) as deadline:
            for index, candidate in enumerate(decision.candidates):
                name = candidate.provider
                is_last = index == len(decision.candidates) - 1
                breaker = resources.breakers.get(name)
                tries = 0
                if over_cap(candidate, max_cost_usd):
                    why = cap_refusal(candidate, max_cost_usd or 0.0).message
                    note_attempt(Attempt(provider=name, model=candidate.model, outcome=SKIPPED_OVER_CAP, error=why,
                                         latency_ms=0.0))  # fmt: skip
                    continue
                while True:
                    if not breaker.begin():
                        note_attempt(Attempt(provider=name, model=candidate.model, outcome="skipped_circuit_open",
                                                latency_ms=0.0))  # fmt: skip
                        break
                    job = job_for(candidate)
                    queued = time.perf_counter()
                    started: float | None = None
                    try:
                        if on_call is not None and candidate != named:
                            await on_call(candidate)
                            named = candidate
                        images = getattr(job, "n", 1)  # tests' stand-in jobs may be None
                        async with contextlib.nullcontext() if name == held else resources.slot(name, images):
                            started = time.perf_counter()
                            queue_ms += (started - queued) * 1000
                            result = await traced_attempt(providers[name], job, candidate.model)
                    except ProviderError as exc:
                        ms = (time.perf_counter() - (started or queued)) * 1000
                        provider_ms += ms
                        exc.provider = exc.provider or name
                        outcome = AMBIGUOUS if isinstance(exc, Unavailable) and exc.ambiguous else exc.code
                        note_attempt(Attempt(provider=name, model=candidate.model, outcome=outcome,
                                                error=exc.message, latency_ms=round(ms, 2)))  # fmt: skip
                        last = exc
                        if isinstance(exc, AuthError):
                            breaker.trip(for_s=exc.reset_after if isinstance(exc, QuotaExhausted) else None)
                            log.error("provider_unusable_breaker_open", provider=name, reason=exc.code,
                                      provider_request_id=exc.request_id, status=exc.status)  # fmt: skip
                        else:
                            breaker.record(not isinstance(exc, Unavailable | RateLimited))
                        if isinstance(exc, InvalidInput) or (
                            isinstance(exc, Rejected) and not decision.fallback_on_rejected
                        ):
                            raise _failure(exc, attempts) from None
                        if isinstance(exc, Unavailable) and exc.ambiguous and not decision.retry_ambiguous:
                            raise _failure(exc, attempts) from None
                        budget = resources.retries.get(name, 1)
                        retry_here = isinstance(exc, RateLimited) or (isinstance(exc, Unavailable) and is_last)
                        if retry_here and tries < budget:
                            wait = (
                                exc.retry_after if isinstance(exc, RateLimited) and exc.retry_after else _backoff(tries)
                            )
                            if time.monotonic() + wait < ends:
                                await sleep(wait)
                                tries += 1
                                continue
                        break
                    except BaseException as exc:  # the deadline, a cancellation, or a defect in the adapter
                        cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
                        if started is None or (cancelled and not deadline.cancel_called):
                            # still queued (no call made), or the caller's cancel or a drain: no verdict on the
                            # provider, but a half-open probe is freed for the next request
                            breaker.release()
                        else:
                            breaker.record(False)  # the deadline ran out on it, or the adapter broke
                        if started is None:
                            raise
                        ms = (time.perf_counter() - started) * 1000
                        provider_ms += ms
                        note_attempt(Attempt(provider=name, model=candidate.model, outcome=AMBIGUOUS,
                                                error="cut short before the provider answered; it may have "
                                                "rendered and billed", latency_ms=round(ms, 2)))  # fmt: skip
                        raise
                    ms = (time.perf_counter() - started) * 1000
                    breaker.record(True)
                    note_attempt(Attempt(provider=name, model=candidate.model, outcome="ok", latency_ms=round(ms, 2)))
                    return Outcome(result, candidate, attempts, provider_ms + ms, queue_ms)
    except TimeoutError:
        message = f"No provider finished within {deadline_s:g} s."
        if attempts and attempts[-1].outcome == AMBIGUOUS:
            message += f" The call to {attempts[-1].provider} was cut short: it may have rendered and billed."
        raise ExecutionFailed(ApiError(504, "deadline_exceeded", message), attempts) from None
    if last is None and (over := [c for c in decision.candidates if over_cap(c, max_cost_usd)]):
        raise ExecutionFailed(cap_refusal(over[0], max_cost_usd or 0.0), attempts)
    if last is None:
        message = "Every candidate's circuit breaker is open; try again shortly."
        raise ExecutionFailed(ApiError(503, "providers_unavailable", message), attempts)
    failed = _failure(last, attempts)
    if capped := [a.provider for a in attempts if a.outcome == SKIPPED_OVER_CAP]:
        failed.error.message += f" Not tried, as their estimates are above max_cost_usd: {', '.join(capped)}."
    raise failed
