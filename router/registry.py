"""Which providers this gateway can call: ``local`` always, the cloud ones when they have a key.

Credentials and base URLs come from the environment (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``,
``GEMINI_API_KEY``, ``GEMINI_BASE_URL``), never from code; models and options from the policy.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping

import anyio
import structlog

from policies.capabilities import Capabilities
from policies.model import Policy
from providers import gemini_image, openai_common
from providers.base import Provider, RunBlocking
from providers.gemini_image import GeminiImageProvider
from providers.local import LocalProvider
from providers.openai_images import OpenAIImagesProvider
from providers.openai_responses import OpenAIResponsesProvider
from router.settings import Settings

log = structlog.get_logger("editgate.registry")
Closer = Callable[[], Awaitable[None]]

CLOUD = {"openai-images": OpenAIImagesProvider, "openai-responses": OpenAIResponsesProvider,
         "gemini": GeminiImageProvider}  # fmt: skip


def configured_capabilities(settings: Settings, emulated: bool) -> dict[str, Capabilities]:
    """What `serve` would configure with these settings (``emulated``: the built-in emulator stands in)."""
    caps = {"local": LocalProvider.capabilities}
    for name, cls in CLOUD.items():
        key = settings.gemini_api_key if name == "gemini" else settings.openai_api_key
        if key or emulated:
            caps[name] = cls.capabilities
    return caps


class ProviderSet(Mapping[str, Provider]):
    """The providers one policy built and the SDK clients they hold. A reload replaces the set; the
    replaced one is :meth:`retire`-d, and its clients are closed when the last call using them ends
    (closing them under a call in progress would break it)."""

    def __init__(self, providers: Mapping[str, Provider], closers: list[Closer] | None = None) -> None:
        self._providers = dict(providers)
        self._closers = closers or []
        self._calls = 0
        self._retired = False
        self.closed = False

    def __getitem__(self, name: str) -> Provider:
        return self._providers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._providers)

    def __len__(self) -> int:
        return len(self._providers)

    @contextlib.asynccontextmanager
    async def in_use(self) -> AsyncIterator[ProviderSet]:
        """Hold the set open for the calls made inside."""
        self._calls += 1
        try:
            yield self
        finally:
            self._calls -= 1
            if self._retired and self._calls == 0:
                await self._close()

    async def retire(self) -> None:
        """Replaced: close the clients now if nothing is calling, else when the last call ends."""
        self._retired = True
        if self._calls == 0:
            await self._close()

    async def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with anyio.CancelScope(shield=True):  # the last caller may be a request that is being cancelled
            for close in self._closers:
                try:
                    await close()
                except Exception as exc:  # a client that fails to close must not fail a request or the reload
                    log.warning("provider_client_close_failed", error=type(exc).__name__)


def in_use(providers: Mapping[str, Provider]) -> contextlib.AbstractAsyncContextManager[Mapping[str, Provider]]:
    """Hold ``providers`` open for the calls made inside (a plain mapping has nothing to hold)."""
    return providers.in_use() if isinstance(providers, ProviderSet) else contextlib.nullcontext(providers)


def build_providers(settings: Settings, policy: Policy, run_blocking: RunBlocking) -> ProviderSet:
    providers: dict[str, Provider] = {"local": LocalProvider(run_blocking)}
    closers: list[Closer] = []
    options = {name: p.options for name, p in policy.providers.items()}
    if settings.openai_api_key:
        openai_names = [n for n in ("openai-images", "openai-responses") if n in policy.providers]
        pool = sum(policy.providers[n].max_concurrency for n in openai_names) + 16  # both adapters share one client
        client = openai_common.make_client(settings.openai_api_key, settings.openai_base_url, max_connections=pool)
        closers.append(client.close)
        images_opts = options.get("openai-images", {})
        providers["openai-images"] = OpenAIImagesProvider(client, images_opts.get("quality_map"))
        resp_opts = options.get("openai-responses", {})
        providers["openai-responses"] = OpenAIResponsesProvider(
            client, resp_opts.get("image_model"), resp_opts.get("quality_map")
        )
    if settings.gemini_api_key:
        connect = policy.providers["gemini"].connect_timeout_s if "gemini" in policy.providers else 10.0
        http = gemini_image.make_http_client(connect)
        client_g = gemini_image.make_client(settings.gemini_api_key, settings.gemini_base_url, http_client=http)
        closers.append(lambda: gemini_image.close_client(client_g, http))
        providers["gemini"] = GeminiImageProvider(client_g, run_blocking)
    return ProviderSet(providers, closers)
