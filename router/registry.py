"""Which providers this gateway can call: ``local`` always, the cloud ones when they have a key.

Credentials and base URLs come from the environment (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``,
``GEMINI_API_KEY``, ``GEMINI_BASE_URL``), never from code; models and options from the policy.
"""

from __future__ import annotations

from policies.capabilities import Capabilities
from policies.model import Policy
from providers import gemini_image, openai_common
from providers.base import Provider, RunBlocking
from providers.gemini_image import GeminiImageProvider
from providers.local import LocalProvider
from providers.openai_images import OpenAIImagesProvider
from providers.openai_responses import OpenAIResponsesProvider
from router.settings import Settings

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


def build_providers(settings: Settings, policy: Policy, run_blocking: RunBlocking) -> dict[str, Provider]:
    providers: dict[str, Provider] = {"local": LocalProvider(run_blocking)}
    options = {name: p.options for name, p in policy.providers.items()}
    if settings.openai_api_key:
        openai_names = [n for n in ("openai-images", "openai-responses") if n in policy.providers]
        pool = sum(policy.providers[n].max_concurrency for n in openai_names) + 16  # both adapters share one client
        client = openai_common.make_client(settings.openai_api_key, settings.openai_base_url, max_connections=pool)
        images_opts = options.get("openai-images", {})
        providers["openai-images"] = OpenAIImagesProvider(client, images_opts.get("quality_map"))
        resp_opts = options.get("openai-responses", {})
        providers["openai-responses"] = OpenAIResponsesProvider(
            client, resp_opts.get("image_model", "gpt-image-2"), resp_opts.get("quality_map")
        )
    if settings.gemini_api_key:
        connect = policy.providers["gemini"].connect_timeout_s if "gemini" in policy.providers else 10.0
        client_g = gemini_image.make_client(
            settings.gemini_api_key, settings.gemini_base_url, connect_timeout_s=connect
        )
        providers["gemini"] = GeminiImageProvider(client_g, run_blocking)
    return providers
