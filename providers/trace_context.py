"""The caller's trace, carried on to the provider: a request hook for the SDKs' HTTP clients (httpx for
google-genai, httpx2 for openai) that adds W3C ``traceparent``/``tracestate`` for the current OpenTelemetry
context. Outside a trace it adds nothing. (router/tracing.py opens the spans; this is the provider side.)"""

from __future__ import annotations

from typing import Any

from opentelemetry import propagate


async def inject_trace_context(request: Any) -> None:
    propagate.inject(request.headers)
