"""Provider construction from settings and policy."""

from __future__ import annotations

from importlib import resources

import yaml

from policies.model import parse_policy
from providers.base import in_worker_thread
from router.registry import build_providers
from router.settings import Settings


def test_openai_connection_pool_follows_the_policys_concurrency() -> None:
    """The SDK's default pool (1,000) made the 1,001st concurrent call fail with a pool timeout (a 502)."""
    policy = yaml.safe_load(resources.files("policies").joinpath("default.yaml").read_text())
    policy["providers"]["openai-images"]["max_concurrency"] = 1500
    policy["providers"]["openai-responses"]["max_concurrency"] = 500
    settings = Settings(openai_api_key="sk-test", openai_base_url="http://127.0.0.1:9/v1", gemini_api_key=None)
    providers = build_providers(settings, parse_policy(yaml.safe_dump(policy)), in_worker_thread)
    pool = providers["openai-images"]._client._client._transport._pool  # type: ignore[attr-defined]
    assert pool._max_connections >= 2000
