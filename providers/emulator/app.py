"""The emulator app: OpenAI Images edits, OpenAI Responses and Gemini generateContent, on one port.

A test double of the providers' HTTP APIs, so the real SDKs can be exercised offline over real HTTP.
The fault layer wraps the whole app, so every response, 404s included, carries the ``x-emulator``
header saying it is not a real provider.
"""

from __future__ import annotations

import base64
from typing import Any

from litestar import Litestar, Request, get, put
from litestar.datastructures import State
from litestar.params import JSONBody

from providers.emulator.billing import ChainHistory
from providers.emulator.faults import EmulatorConfig, FaultInjector
from providers.emulator.gemini_api import generate_content
from providers.emulator.openai_api import ResponseStore, images_edits, images_generations, responses_create


@put("/_emulator/config")
async def set_config(request: Request, data: JSONBody[EmulatorConfig]) -> dict[str, Any]:
    """Replace the latency/fault plan (re-seeds the random streams)."""
    request.app.state.injector.configure(data)
    request.app.state.config = data
    return data.model_dump()


@get("/_emulator/config")
async def get_config(request: Request) -> dict[str, Any]:
    return request.app.state.config.model_dump()


@get("/_emulator/stats")
async def get_stats(request: Request) -> dict[str, Any]:
    """Requests seen, faults injected and the most requests in progress at once, per endpoint, since the
    plan was last set."""
    injector = request.app.state.injector
    return {"requests": injector.requests, "faults_injected": injector.injected,
            "peak_in_flight": injector.peak_in_flight, "traceparents": injector.traceparents}  # fmt: skip


@get("/_emulator/received")
async def get_received(request: Request) -> list[dict[str, str]]:
    """Test double only: the request bodies kept since the plan was set (``record_bodies: true``), base64."""
    received = request.app.state.injector.received
    return [{"endpoint": ep, "body_b64": base64.b64encode(b"".join(parts)).decode()} for ep, parts in received]


def create_emulator_app(config: EmulatorConfig | None = None) -> FaultInjector:
    config = config or EmulatorConfig()
    state = State({"config": config, "responses": ResponseStore(), "render_cache": {}, "chain_history": ChainHistory()})
    app = Litestar(
        route_handlers=[
            images_edits,
            images_generations,
            responses_create,
            generate_content,
            set_config,
            get_config,
            get_stats,
            get_received,
        ],
        state=state,
        request_max_body_size=256 * 1024 * 1024,
        openapi_config=None,
        logging_config=None,
    )
    injector = FaultInjector(app, config)
    state["injector"] = injector
    return injector
