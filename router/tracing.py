"""OpenTelemetry traces: a span per request, and inside it intake, the routing decision, each provider attempt,
normalization and storage. The caller's W3C ``traceparent`` is honoured (the request's span continues the
caller's trace) and sent on to the providers with every SDK call, so one trace runs from the product backend
through editgate to OpenAI or Google.

Export is the standard OTLP/HTTP exporter, configured by the standard variables: it is on when
``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set (``OTEL_SERVICE_NAME``
defaults to ``editgate``), and nothing is recorded or sent when neither is. Spans carry ids, providers, models
and outcomes — never a prompt or image bytes.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any, TypeVar

from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from providers.base import EditJob, Provider, ProviderResult

F = TypeVar("F", bound=Callable[..., Any])
tracer = trace.get_tracer("editgate")
_configured = False


def configure_tracing() -> bool:
    """Install the SDK with an OTLP exporter when the environment asks for one (once per process)."""
    global _configured
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if _configured or not endpoint:
        return _configured
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "editgate")})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True
    return True


def traced(name: str) -> Callable[[F], F]:
    """A span around each call of the decorated function (sync or async)."""

    def wrap(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with tracer.start_as_current_span(name):
                    return await fn(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with tracer.start_as_current_span(name):
                return fn(*args, **kwargs)

        return run  # type: ignore[return-value]

    return wrap


async def traced_attempt(provider: Provider, job: EditJob, model: str) -> ProviderResult:
    """One provider call as a client span; an error's class is its status (the executor decides what it means)."""
    with tracer.start_as_current_span(
        "editgate.provider_attempt", kind=SpanKind.CLIENT, record_exception=False,
        attributes={"editgate.provider": provider.name, "editgate.model": model},
    ) as span:  # fmt: skip
        try:
            result = await provider.edit(job)
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.set_attribute("editgate.outcome", getattr(exc, "code", type(exc).__name__))
            raise
        span.set_attribute("editgate.outcome", "ok")
        return result


def tracing_middleware(app: Any) -> Any:
    """The request's server span, continuing the caller's ``traceparent``. Skipped entirely (no span, no cost)
    when tracing is not configured and the caller sent no trace context."""

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])
                   if k in (b"traceparent", b"tracestate")}  # fmt: skip
        if not headers and not _configured:
            await app(scope, receive, send)
            return
        token = context.attach(propagate.extract(headers))
        try:
            with tracer.start_as_current_span(f"{scope['method']} {scope['path']}", kind=SpanKind.SERVER,
                                              attributes={"http.request.method": scope["method"],
                                                          "url.path": scope["path"]}) as span:  # fmt: skip

                async def send_status(message: Any) -> None:
                    if message["type"] == "http.response.start":
                        span.set_attribute("http.response.status_code", message["status"])
                        if message["status"] >= 500:
                            span.set_status(Status(StatusCode.ERROR))
                    await send(message)

                await app(scope, receive, send_status)
        finally:
            context.detach(token)

    return middleware
