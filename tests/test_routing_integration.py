"""Routing against the emulators' fault injection, over real HTTP: retries, breakers, forced providers,
budgets, ambiguous timeouts, explain and hot reload."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from router.cli import main
from tests.conftest import cloud_settings, fixture_bytes

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")
DEFAULT = yaml.safe_load(resources.files("policies").joinpath("default.yaml").read_text())


def policy_file(tmp_path: Path, **changes: Any) -> Path:
    data = json.loads(json.dumps(DEFAULT))
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def cloud_server(make_server: Callable[..., str], emulator: str, **overrides: Any) -> str:
    return make_server(**cloud_settings(emulator), **overrides)


def masked(url: str, **fields: str) -> httpx.Response:
    files = [("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))]
    return httpx.post(
        f"{url}/v1/edits", files=files, data={"prompt": "replace the table with sand", **fields}, timeout=60
    )


def stats(emulator: str) -> dict[str, int]:
    return httpx.get(f"{emulator}/_emulator/stats").json()["requests"]


def test_rate_limit_waits_for_retry_after_then_succeeds(cloud: httpx.Client, faults: Callable[..., None]) -> None:
    faults("images", rate_limit=1.0, retry_after_s=1, max_faults=1)
    body = masked(str(cloud.base_url), tier="pro").json()
    assert body["provider"] == "openai-images"
    assert [(a["provider"], a["outcome"]) for a in body["route"]["attempts"]] == [
        ("openai-images", "provider_rate_limited"), ("openai-images", "ok")]  # fmt: skip
    assert body["latency_ms"]["total"] >= 1000, "the retry waited for retry-after"


def test_breaker_opens_and_the_next_request_skips_the_provider(
    make_server: Callable[..., str], emulator: str, faults: Callable[..., None], tmp_path: Path
) -> None:
    breaker = {"consecutive_failures": 2, "cool_down_s": 600}
    url = cloud_server(make_server, emulator, policy_file=policy_file(tmp_path, breaker=breaker))
    faults("images", unavailable=1.0)
    for _ in range(2):
        body = masked(url, tier="pro").json()
        assert body["provider"] == "gemini" and body["route"]["attempts"][0]["outcome"] == "provider_unavailable"
    before = stats(emulator)["images"]
    body = masked(url, tier="pro").json()
    assert stats(emulator)["images"] == before, "an open breaker means no call at all"
    assert body["provider"] == "gemini"
    assert {"provider": "openai-images", "reasons": ["circuit breaker open"]} in body["route"]["dropped"]
    assert httpx.get(f"{url}/v1/policy").json()["breakers"]["openai-images"] == "open"


def test_forced_provider(make_server: Callable[..., str], emulator: str, tmp_path: Path) -> None:
    url = cloud_server(make_server, emulator, image_edit_provider="gemini")
    plain = masked(url, tier="pro").json()
    assert (plain["route"]["rule"], plain["provider"]) == ("env.IMAGE_EDIT_PROVIDER", "gemini")
    refused = masked(url, background="transparent")
    assert refused.status_code == 422 and "transparent" in refused.json()["error"]["message"]
    with_fallback = cloud_server(make_server, emulator, image_edit_provider="gemini",
                                 policy_file=policy_file(tmp_path, forced_fallbacks=["openai-images"]))  # fmt: skip
    served = masked(with_fallback, background="transparent").json()
    assert served["provider"] == "openai-images"


def test_budget_reject_is_a_402_that_names_the_budget(make_server: Callable[..., str], emulator: str,
                                                     tmp_path: Path) -> None:  # fmt: skip
    path = policy_file(tmp_path, budgets={"tenants": {"dev": 0.01}, "on_exceed": "reject"})
    r = masked(cloud_server(make_server, emulator, policy_file=path))
    assert r.status_code == 402
    err = r.json()["error"]
    assert err["code"] == "budget_exceeded" and "$0.01" in err["message"] and "resets" in err["message"]


def test_ambiguous_timeout_is_not_retried(make_server: Callable[..., str], emulator: str,
                                         faults: Callable[..., None], tmp_path: Path) -> None:  # fmt: skip
    providers = {**DEFAULT["providers"], "gemini": {**DEFAULT["providers"]["gemini"], "timeout_s": 1}}
    url = cloud_server(make_server, emulator, policy_file=policy_file(tmp_path, providers=providers))
    faults("gemini", hang=1.0, hang_s=5)
    r = masked(url)  # standard tier: gemini, then openai-images, then local
    assert r.status_code == 504
    err = r.json()["error"]
    assert err["code"] == "provider_timeout" and "may have rendered" in err["message"]
    record = httpx.get(f"{url}/v1/edits/{err['edit_id']}").json()
    assert [a["provider"] for a in record["route"]["attempts"]] == ["gemini"], "no fallback: it may have billed"


def test_explain_calls_nothing_and_stores_nothing(cloud: httpx.Client, emulator: str) -> None:
    before = stats(emulator)
    files = [("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))]
    r = cloud.post("/v1/route/explain", files=files, data={"prompt": "replace the table", "tier": "pro"})
    assert r.status_code == 200, r.text
    decision = r.json()["decision"]
    assert decision["rule"] == "pro-masked"
    assert [c["provider"] for c in decision["candidates"]] == ["openai-images", "gemini"]
    assert decision["candidates"][0]["estimate_usd"] > decision["candidates"][1]["estimate_usd"] > 0
    assert any(t["rule"] == "free-removal" and not t["matched"] for t in decision["trace"])
    assert stats(emulator) == before


def test_explain_cli(fixtures_dir: Path, tmp_path: Path) -> None:
    request = tmp_path / "req.json"
    request.write_text(json.dumps({"image_path": str(fixtures_dir / "coffee.png"),
                                   "mask_path": str(fixtures_dir / "coffee_background_mask.png"),
                                   "prompt": "remove the table"}))  # fmt: skip
    result = CliRunner().invoke(main, ["explain", str(request)], env={"OPENAI_API_KEY": "", "GEMINI_API_KEY": ""})
    assert result.exit_code == 0, result.output
    assert "MATCH free-removal" in result.output and "=> rule free-removal: local" in result.output


def test_policy_check_cli(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: x\ndefault_route: local\nproviders:\n  local: {model: m}\nrules:\n  - name: r\n"
                   "    when: {tier: gold}\n    route: local\n")  # fmt: skip
    result = CliRunner().invoke(main, ["policy", "check", str(bad)])
    assert result.exit_code == 1 and "line 7" in result.output and "gold" in result.output
    good = CliRunner().invoke(main, ["policy", "check", str(policy_file(tmp_path))])
    assert good.exit_code == 0 and "free-removal" in good.output


def test_policy_reloads_on_change_and_refuses_a_broken_file(make_server: Callable[..., str], tmp_path: Path) -> None:
    path = policy_file(tmp_path)
    url = make_server(policy_file=path)
    running = httpx.get(f"{url}/v1/policy").json()

    def wait_for(predicate: Callable[[dict], bool]) -> dict:
        deadline = time.monotonic() + 15
        while True:
            current = httpx.get(f"{url}/v1/policy").json()
            if predicate(current) or time.monotonic() > deadline:
                return current
            time.sleep(0.1)

    path.write_text("version: broken\nrules: [this is not a rule\n")
    time.sleep(2.5)  # several watch intervals: the broken file must have been seen and refused
    assert httpx.get(f"{url}/v1/policy").json()["digest"] == running["digest"]
    assert masked(url, prompt="remove the table").status_code == 200, "still serving on the old policy"
    policy_file(tmp_path, version="reloaded-1")
    assert wait_for(lambda p: p["version"] == "reloaded-1")["version"] == "reloaded-1"


@pytest.mark.parametrize("path", ["/v1/policy"])
def test_policy_endpoint_shows_what_runs(cloud: httpx.Client, path: str) -> None:
    body = cloud.get(path).json()
    assert body["version"] == DEFAULT["version"] and body["rules"][0]["name"] == "newer-model-params"
    assert set(body["configured"]) == {"local", "openai-images", "openai-responses", "gemini"}


def test_route_names_the_policy_version_and_digest_as_policy_does(client: httpx.Client) -> None:
    """`route.policy_version` is the policy's own version (as `GET /v1/policy` says), the digest is `policy_digest`."""
    from policies.model import parse_policy

    running = parse_policy(resources.files("policies").joinpath("default.yaml").read_text())
    body = masked(str(client.base_url), prompt="remove the table").json()
    assert body["route"]["policy_version"] == running.version and running.version != running.digest
    assert body["route"]["policy_digest"] == running.digest
    explained = client.post("/v1/route/explain", files=[("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))],
                            data={"prompt": "remove the table"}).json()["decision"]  # fmt: skip
    assert (explained["policy_version"], explained["policy_digest"]) == (running.version, running.digest)
    route_schema = client.get("/docs/openapi.json").json()["components"]["schemas"]["RouteInfo"]["properties"]
    assert "digest" in route_schema["policy_digest"]["description"]
    assert "version" in route_schema["policy_version"]["description"]
