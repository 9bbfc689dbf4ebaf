"""Try a decision's candidates in order under one deadline, keeping every attempt for the trace.

Retryable failures (rate limits, outages) and "not for this provider" move on to the next candidate;
a safety rejection stops and is returned to the caller, since another provider would only be asked to
do what one already refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import anyio

from policies.model import Candidate, RouteDecision
from providers.base import EditJob, Provider, ProviderResult
from providers.errors import ProviderError, RateLimited, Rejected
from router.errors import ApiError
from router.models import Attempt

_STATUS = {
    "provider_rate_limited": 429,
    "provider_unavailable": 502,
    "provider_rejected": 422,
    "invalid_for_provider": 422,
    "provider_auth_failed": 502,
    "provider_error": 502,
}


@dataclass(slots=True)
class Outcome:
    result: ProviderResult
    candidate: Candidate
    attempts: list[Attempt]
    provider_ms: float


@dataclass(slots=True)
class ExecutionFailed(Exception):
    error: ApiError
    attempts: list[Attempt] = field(default_factory=list)


def _failure(exc: ProviderError, attempts: list[Attempt]) -> ExecutionFailed:
    extra: dict[str, object] = {"provider": exc.provider}
    if exc.request_id:
        extra["provider_request_id"] = exc.request_id
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        extra["retry_after"] = exc.retry_after
    message = f"{exc.provider or 'provider'}: {exc.message}"
    return ExecutionFailed(ApiError(_STATUS.get(exc.code, 502), exc.code, message, **extra), attempts)


async def execute(
    decision: RouteDecision,
    providers: Mapping[str, Provider],
    job_for: Callable[[Candidate], EditJob],
    deadline_s: float,
) -> Outcome:
    attempts: list[Attempt] = []
    last: ProviderError | None = None
    provider_ms = 0.0
    try:
        with anyio.fail_after(deadline_s):
            for candidate in decision.candidates:
                started = time.perf_counter()
                try:
                    result = await providers[candidate.provider].edit(job_for(candidate))
                except ProviderError as exc:
                    exc.provider = exc.provider or candidate.provider
                    ms = (time.perf_counter() - started) * 1000
                    provider_ms += ms
                    attempts.append(
                        Attempt(
                            provider=candidate.provider,
                            model=candidate.model,
                            outcome=exc.code,
                            error=exc.message,
                            latency_ms=round(ms, 2),
                        )
                    )
                    last = exc
                    if isinstance(exc, Rejected):
                        break
                    continue
                ms = (time.perf_counter() - started) * 1000
                attempts.append(
                    Attempt(
                        provider=candidate.provider,
                        model=candidate.model,
                        outcome="ok",
                        latency_ms=round(ms, 2),
                    )
                )
                return Outcome(result, candidate, attempts, provider_ms + ms)
    except TimeoutError:
        raise ExecutionFailed(
            ApiError(504, "deadline_exceeded", f"No provider finished within {deadline_s:g} s."), attempts
        ) from None
    if last is None:
        raise ExecutionFailed(ApiError(422, "no_capable_provider", "No provider can serve this request."))
    raise _failure(last, attempts)
