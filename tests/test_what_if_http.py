"""``POST /v1/route/what-if`` and ``editgate what-if`` over real HTTP: edits run through the real service
and the emulators, then a candidate policy that moves the `pro-masked` rule from openai-images to gemini
is replayed over them, and its numbers are checked against the recorded edits and today's prices."""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import router.what_if
from policies.what_if import Moved, Observed, interval95
from router.cli import main
from tests.conftest import cloud_settings, fixture_bytes
from tests.test_admin_scope import _bearer, _key
from tests.test_what_if_arithmetic import DEFAULT_TEXT, PRO_TO_GEMINI

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")
FILES = [("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))]
FIELDS = {"prompt": "replace the table with sand", "protect": "only_mask"}


class World:
    """One server, three keys, and the edits each tenant ran (as their responses)."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.url, self.data_dir = url, data_dir
        self.acme = _key(data_dir, "--tenant", "acme")
        self.globex = _key(data_dir, "--tenant", "globex")
        self.admin = _key(data_dir, "--admin")
        self.edits: dict[str, list[dict[str, Any]]] = {"acme": [], "globex": []}
        self.calls: dict[str, list[dict[str, Any]]] = {"acme": [], "globex": []}
        """Every record whose provider calls the ledger holds: edits, and the runs of a compare."""

    def edit(self, tenant: str, tier: str, queued: bool = False) -> dict[str, Any]:
        headers = _bearer(getattr(self, tenant)) | ({"Prefer": "respond-async"} if queued else {})
        r = httpx.post(f"{self.url}/v1/edits", files=FILES, data={**FIELDS, "tier": tier}, headers=headers, timeout=60)
        assert r.status_code in (200, 202), r.text
        body = r.json()
        if queued:
            body = httpx.get(f"{self.url}/v1/edits/{body['id']}?wait=60", headers=headers, timeout=90).json()
        assert body["status"] == "succeeded", body
        self.edits[tenant].append(body)
        self.calls[tenant].append(body)
        return body

    def compare(self, tenant: str, provider: str) -> None:
        """A side-by-side run: ledgered (observed), but not routed traffic to replay."""
        headers = _bearer(getattr(self, tenant))
        r = httpx.post(f"{self.url}/v1/compare?providers={provider}", files=FILES, data={**FIELDS, "tier": "pro"},
                       headers=headers, timeout=60)  # fmt: skip
        assert r.status_code == 200, r.text
        for result in r.json()["results"]:
            self.calls[tenant].append(httpx.get(f"{self.url}/v1/edits/{result['id']}", headers=headers).json())

    def refused(self, tenant: str) -> None:
        """An edit the policy refuses: stored as failed, never routed, so not replayed."""
        data = {**FIELDS, "tier": "pro", "background": "transparent", "provider": "gemini"}
        r = httpx.post(f"{self.url}/v1/edits", files=FILES, data=data, headers=_bearer(getattr(self, tenant)))
        assert (r.status_code, r.json()["error"]["code"]) == (422, "no_capable_provider"), r.text

    def explain(self, tenant: str, tier: str) -> dict[str, Any]:
        headers = _bearer(getattr(self, tenant))
        r = httpx.post(f"{self.url}/v1/route/explain", files=FILES, data={**FIELDS, "tier": tier}, headers=headers)
        assert r.status_code == 200, r.text
        return r.json()["decision"]

    def what_if(self, key: str, **body: Any) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/route/what-if", json=body, headers=_bearer(getattr(self, key)), timeout=60)


@pytest.fixture(scope="module")
def world(make_server: Callable[..., str], emulator: str, tmp_path_factory: pytest.TempPathFactory) -> World:
    data_dir = tmp_path_factory.mktemp("what-if")
    w = World(make_server(data_dir=data_dir, **cloud_settings(emulator)), data_dir)
    w.edit("acme", "pro")
    w.edit("acme", "pro", queued=True)  # a queued edit records its features when it is routed
    w.edit("acme", "standard")
    w.edit("globex", "pro")
    w.compare("acme", "gemini")
    w.refused("acme")
    return w


def _attempts(records: list[dict[str, Any]], provider: str) -> list[dict[str, Any]]:
    return [a for r in records for a in r["route"]["attempts"] if a["provider"] == provider]


def _ratios(records: list[dict[str, Any]], provider: str) -> list[float]:
    return [r["cost"]["actual_usd"] / r["cost"]["estimated_usd"] for r in records if r["provider"] == provider]


def test_moving_a_rule_to_gemini_reports_the_moves_and_costs_of_the_recorded_edits(world: World) -> None:
    acme = world.edits["acme"]
    assert [(e["route"]["rule"], e["provider"]) for e in acme] == [
        ("pro-masked", "openai-images"), ("pro-masked", "openai-images"), ("standard-tier", "gemini")]  # fmt: skip
    r = world.what_if("acme", policy=PRO_TO_GEMINI, since="1h")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "route.what_if"
    assert out["policy"]["version"] == yaml.safe_load(PRO_TO_GEMINI)["version"] and len(out["policy"]["digest"]) == 16
    assert (out["edits"], out["unchanged"], out["changed"]) == (3, 1, 2)
    assert out["moves"] == [{"from": {"rule": "pro-masked", "provider": "openai-images"},
                             "to": {"rule": "pro-masked", "provider": "gemini"}, "count": 2}]  # fmt: skip
    assert out["refusals"] == [] and out["capability_drops"] == []

    gemini_today = next(c for c in world.explain("acme", "pro")["candidates"] if c["provider"] == "gemini")
    before = sum(e["cost"]["actual_usd"] for e in acme)
    after = acme[2]["cost"]["actual_usd"] + 2 * gemini_today["estimate_usd"]
    cost = out["cost"]
    assert cost["before_usd"] == pytest.approx(before, abs=1e-6)
    assert cost["after_usd"] == pytest.approx(after, abs=1e-6)
    assert cost["delta_usd"] == pytest.approx(after - before, abs=1e-6)
    assert cost["per_rule"] == [
        {"rule": "pro-masked", "edits": 2, "before_usd": pytest.approx(acme[0]["cost"]["actual_usd"] * 2, abs=1e-6),
         "after_usd": pytest.approx(2 * gemini_today["estimate_usd"], abs=1e-6)},
        {"rule": "standard-tier", "edits": 1, "before_usd": pytest.approx(acme[2]["cost"]["actual_usd"], abs=1e-6),
         "after_usd": pytest.approx(acme[2]["cost"]["actual_usd"], abs=1e-6)},
    ]  # fmt: skip
    calls = world.calls["acme"]
    assert len(calls) == 4, "three edits and one compare run"
    observed = {name: Observed(ratios=_ratios(calls, name)) for name in ("openai-images", "gemini")}
    to_gemini = Moved()
    for _ in range(2):
        to_gemini.add(gemini_today["estimate_usd"])
    expected = interval95(acme[2]["cost"]["actual_usd"], {"gemini": to_gemini}, observed)
    assert cost["after_interval95_usd"] == pytest.approx(list(expected), abs=2e-6)

    providers = {p["provider"]: p for p in out["providers"]}
    assert (providers["openai-images"]["edits_before"], providers["openai-images"]["edits_after"]) == (2, 0)
    assert (providers["gemini"]["edits_before"], providers["gemini"]["edits_after"]) == (1, 3)
    for name in ("openai-images", "gemini"):
        ms = [a["latency_ms"] for a in _attempts(calls, name)]
        seen = providers[name]["observed"]
        assert seen["edits"] == len(ms) and seen["failure_rate"] == 0.0
        assert seen["p50_ms"] == pytest.approx(statistics.median(ms), abs=0.06)
        assert seen["p95_ms"] == pytest.approx(float(np.percentile(ms, 95)), abs=0.06)
    assert any(n.startswith("gemini served other edits in this window") for n in out["estimates"])


def test_each_edit_keeps_the_features_its_policy_saw(world: World) -> None:
    with sqlite3.connect(world.data_dir / "editgate.db") as db:
        stored = dict(db.execute("SELECT id, route_features FROM versions WHERE route_features IS NOT NULL"))
    for edit, tier in zip(world.edits["acme"], ("pro", "pro", "standard"), strict=True):
        recorded = json.loads(stored[edit["id"]])
        explained = httpx.post(f"{world.url}/v1/route/explain", files=FILES, data={**FIELDS, "tier": tier},
                               headers=_bearer(world.acme)).json()  # fmt: skip
        assert recorded["features"] == explained["features"], "what the policy saw, queued or not"
        assert recorded["provider"] == explained["decision"]["candidates"][0]["provider"] == edit["provider"]
        assert recorded["image_sizes"] == [[edit["inputs"]["source"]["width"], edit["inputs"]["source"]["height"]]]
        assert recorded["prompt_bytes"] >= len(FIELDS["prompt"]) and recorded["experiment_key"] is None


def test_a_replay_read_a_page_at_a_time_reports_the_same(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = world.what_if("admin", policy=PRO_TO_GEMINI, tenant="*").json()
    monkeypatch.setattr(router.what_if, "PAGE", 1)
    paged = world.what_if("admin", policy=PRO_TO_GEMINI, tenant="*").json()
    assert paged["edits"] == 4
    assert {k: v for k, v in paged.items() if k != "window"} == {k: v for k, v in whole.items() if k != "window"}


def test_many_replays_at_once_all_answer(world: World) -> None:
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: world.what_if("acme", policy=PRO_TO_GEMINI), range(6)))
    assert {r.status_code for r in answers} == {200}
    assert len({json.dumps({k: v for k, v in r.json().items() if k != "window"}) for r in answers}) == 1


def test_the_running_policy_changes_nothing(world: World) -> None:
    out = world.what_if("acme", policy=DEFAULT_TEXT).json()
    assert (out["edits"], out["changed"], out["moves"]) == (3, 0, [])
    assert out["cost"]["after_usd"] == out["cost"]["before_usd"]


def test_a_tenant_sees_only_its_own_edits_and_may_not_name_another(world: World) -> None:
    globex = world.what_if("globex", policy=PRO_TO_GEMINI).json()
    assert (globex["edits"], globex["changed"]) == (1, 1)
    assert globex["cost"]["before_usd"] == pytest.approx(world.edits["globex"][0]["cost"]["actual_usd"], abs=1e-6)
    assert any(n.startswith("gemini never served these edits") for n in globex["estimates"])
    assert [p["provider"] for p in globex["providers"]] == ["gemini", "openai-images"]
    assert globex["providers"][0]["observed"]["edits"] == 0, "acme's gemini calls are not globex's to see"
    refused = world.what_if("acme", policy=PRO_TO_GEMINI, tenant="globex")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"
    assert world.what_if("acme", policy=PRO_TO_GEMINI, tenant="*").status_code == 403
    assert world.what_if("acme", policy=PRO_TO_GEMINI, tenant="acme").json()["edits"] == 3


def test_an_admin_may_name_a_tenant_or_all(world: World) -> None:
    assert world.what_if("admin", policy=PRO_TO_GEMINI).json()["edits"] == 0, "an admin key's own tenant"
    assert world.what_if("admin", policy=PRO_TO_GEMINI, tenant="globex").json()["edits"] == 1
    everyone = world.what_if("admin", policy=PRO_TO_GEMINI, tenant="*").json()
    assert (everyone["edits"], everyone["changed"]) == (4, 3)
    bad = world.what_if("admin", policy=PRO_TO_GEMINI, tenant="Not A Tenant")
    assert (bad.status_code, bad.json()["error"]["param"]) == (422, "tenant")


def test_an_invalid_policy_is_a_422_naming_its_line(world: World) -> None:
    bad = PRO_TO_GEMINI.replace("    route: gemini\n    fallbacks: [openai-images]", "    route: gemnii", 1)
    r = world.what_if("acme", policy=bad)
    assert r.status_code == 422
    error = r.json()["error"]
    line = next(i for i, text in enumerate(bad.splitlines(), 1) if "gemnii" in text)
    assert (error["code"], error["param"]) == ("invalid_policy", "policy")
    assert f"line {line}, column 12" in error["message"] and "gemnii" in error["message"]


@pytest.mark.parametrize("body", [{"since": "7w"}, {"since": "2026-01-01T00:00:00"}, {"since": "2999-01-01T00:00:00Z"}])
def test_a_bad_since_is_a_422_naming_since(world: World, body: dict[str, str]) -> None:
    r = world.what_if("acme", policy=PRO_TO_GEMINI, **body)
    assert (r.status_code, r.json()["error"]["param"]) == (422, "since")


@pytest.mark.parametrize(
    ("body", "param"),
    [({}, "policy"), ({"policy": 5}, "policy"), ({"policy": "x", "extra": 1}, "extra"), ([1], None)],
)
def test_a_malformed_body_is_a_400_naming_the_field(world: World, body: Any, param: str | None) -> None:
    r = httpx.post(f"{world.url}/v1/route/what-if", json=body, headers=_bearer(world.acme))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_no_key_is_a_401_and_nothing_is_called_or_stored(world: World, emulator: str) -> None:
    assert httpx.post(f"{world.url}/v1/route/what-if", json={"policy": DEFAULT_TEXT}).status_code == 401
    calls = httpx.get(f"{emulator}/_emulator/stats").json()["requests"]
    listed = httpx.get(f"{world.url}/v1/edits", headers=_bearer(world.acme)).json()["data"]
    world.what_if("acme", policy=PRO_TO_GEMINI)
    assert httpx.get(f"{emulator}/_emulator/stats").json()["requests"] == calls
    assert httpx.get(f"{world.url}/v1/edits", headers=_bearer(world.acme)).json()["data"] == listed


def test_the_openapi_document_describes_it(world: World) -> None:
    doc = httpx.get(f"{world.url}/docs/openapi.json").json()
    operation = doc["paths"]["/v1/route/what-if"]["post"]
    assert {"200", "400", "401", "403", "422", "500"} <= set(operation["responses"])
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"policy", "since", "tenant"} and body["required"] == ["policy"]
    schemas = doc["components"]["schemas"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/WhatIfReport")
    assert set(schemas["WhatIfReport"]["required"]) == {
        "object", "window", "policy", "edits", "unchanged", "changed", "moves", "cost", "refusals",
        "capability_drops", "providers", "estimates"}  # fmt: skip
    assert set(schemas["WhatIfMove"]["properties"]) == {"from", "to", "count"}


def test_the_cli_prints_the_summary_and_the_json(world: World, tmp_path: Path) -> None:
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(PRO_TO_GEMINI)
    args = ["what-if", str(candidate), "--server", world.url, "--api-key", world.acme, "--since", "2h"]
    shown = CliRunner().invoke(main, args)
    assert shown.exit_code == 0, shown.output
    assert "over 3 edits" in shown.output and "unchanged 1, changed 2" in shown.output
    assert "2  pro-masked / openai-images  ->  pro-masked / gemini" in shown.output
    assert "gemini never served" not in shown.output and "gemini served other edits" in shown.output
    as_json = CliRunner().invoke(main, [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.output)
    api = world.what_if("acme", policy=PRO_TO_GEMINI, since="2h").json()
    assert {k: v for k, v in report.items() if k != "window"} == {k: v for k, v in api.items() if k != "window"}
    since = datetime.fromisoformat(report["window"]["since"]).timestamp()
    assert since == pytest.approx(time.time() - 7200, abs=120)


def test_the_cli_reports_an_invalid_policy_and_a_tenant_it_may_not_see(world: World, tmp_path: Path) -> None:
    candidate = tmp_path / "bad.yaml"
    candidate.write_text("version: 1\nrules: [\n")
    base = ["what-if", str(candidate), "--server", world.url, "--api-key", world.acme]
    result = CliRunner().invoke(main, base)
    assert result.exit_code == 1 and "422 invalid_policy: line" in result.output
    candidate.write_text(PRO_TO_GEMINI)
    result = CliRunner().invoke(main, [*base, "--tenant", "globex"])
    assert result.exit_code == 1 and "403 admin_required" in result.output


def test_the_cli_says_when_the_server_is_unreachable(tmp_path: Path) -> None:
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(PRO_TO_GEMINI)
    result = CliRunner().invoke(main, ["what-if", str(candidate), "--server", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "could not reach http://127.0.0.1:9" in result.output
