"""``GET /v1/spend`` over real HTTP: the series add up to the ledger's billed cost, a tenant sees only its own,
an admin sees every tenant (or one), and every bad parameter is a 4xx naming it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import cloud_settings, fixture_bytes
from tests.test_admin_scope import _bearer, _key
from tests.test_routing_integration import DEFAULT, policy_file

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")


def _server(make_server: Callable[..., str], emulator: str, tmp_path: Path) -> tuple[str, str, str, str]:
    budgets = {"default_daily_usd": 3.0, "tenants": {"acme": 5.0}, "on_exceed": "reject"}
    data_dir = tmp_path / "data"
    url = make_server(data_dir=data_dir, policy_file=policy_file(tmp_path, rules=DEFAULT["rules"], budgets=budgets),
                      **cloud_settings(emulator))  # fmt: skip
    keys = (_key(data_dir, "--tenant", "acme"), _key(data_dir, "--tenant", "globex"),
            _key(data_dir, "--admin", "--tenant", "ops"))  # fmt: skip
    return url, *keys


@pytest.fixture()
def ledgered(make_server: Callable[..., str], emulator: str, tmp_path: Path) -> tuple[str, str, str, str]:
    """A fresh server (its ledger empty) with budgets, keys for tenants `acme` and `globex` and an admin key."""
    return _server(make_server, emulator, tmp_path)


@pytest.fixture(scope="module")
def shared(make_server: Callable[..., str], emulator: str, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[str, str, str, str]:  # fmt: skip
    """The same, shared by the tests that only read parameters and the document."""
    return _server(make_server, emulator, tmp_path_factory.mktemp("spend"))


def _edit(url: str, key: str, provider: str, tier: str = "pro") -> dict:
    files = {"image": ("c.png", COFFEE, "image/png"), "mask": ("m.png", MASK, "image/png")}
    data = {"prompt": "make the background a beach", "tier": tier, "provider": provider}
    r = httpx.post(f"{url}/v1/edits", files=files, data=data, headers=_bearer(key), timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def test_spend_series_add_up_to_the_billed_edits_by_provider_and_rule(ledgered: tuple[str, str, str, str]) -> None:
    url, acme, globex, _admin = ledgered
    edits = [_edit(url, acme, "openai-images"), _edit(url, acme, "gemini"), _edit(url, acme, "gemini")]
    _edit(url, globex, "openai-images")  # another tenant's spend never shows in acme's
    r = httpx.get(f"{url}/v1/spend", params={"since": "24h", "bucket": "hour"}, headers=_bearer(acme))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "spend.series" and body["tenant"] == "acme" and body["group_by"] == "provider"
    assert len(body["buckets"]) in (24, 25) and body["bucket_s"] == 3600
    assert all(b - a == 3600 for a, b in zip(body["buckets"], body["buckets"][1:], strict=False))
    by_key = {s["key"]: s for s in body["series"]}
    expected: dict[str, float] = {}
    for e in edits:
        expected[e["provider"]] = expected.get(e["provider"], 0.0) + e["cost"]["actual_usd"]
    assert set(by_key) == set(expected)
    for key, usd in expected.items():
        assert by_key[key]["total_usd"] == pytest.approx(usd, abs=1e-6)
        assert sum(by_key[key]["usd"]) == pytest.approx(usd, abs=1e-6)
        assert len(by_key[key]["usd"]) == len(body["buckets"])
    assert by_key["gemini"]["attempts"][-1] == 2
    assert body["total_usd"] == pytest.approx(sum(expected.values()), abs=1e-6)
    assert body["budget"] == {"daily_usd": 5.0, "on_exceed": "reject", "tenants": {}}
    latency = {s["provider"]: s for s in body["latency"]}
    assert set(latency) == {"openai-images", "gemini"} and latency["gemini"]["calls"][-1] == 2
    assert latency["gemini"]["p50_ms"][-1] is not None and latency["gemini"]["p50_ms"][0] is None

    by_rule = httpx.get(f"{url}/v1/spend", params={"group_by": "rule"}, headers=_bearer(acme)).json()
    assert by_rule["bucket"] == "day" and by_rule["total_usd"] == pytest.approx(body["total_usd"], abs=1e-6)
    assert {s["key"] for s in by_rule["series"]} == {e["route"]["rule"] for e in edits}


def test_admin_sees_every_tenant_or_one_and_a_tenant_only_itself(ledgered: tuple[str, str, str, str]) -> None:
    url, acme, globex, admin = ledgered
    a = _edit(url, acme, "gemini")
    g = _edit(url, globex, "openai-images")
    everyone = httpx.get(f"{url}/v1/spend", params={"group_by": "tenant"}, headers=_bearer(admin)).json()
    assert everyone["tenant"] is None
    totals = {s["key"]: s["total_usd"] for s in everyone["series"]}
    assert totals == pytest.approx({"acme": a["cost"]["actual_usd"], "globex": g["cost"]["actual_usd"]}, abs=1e-6)
    assert everyone["budget"]["tenants"] == {"acme": 5.0} and everyone["budget"]["daily_usd"] == 3.0

    one = httpx.get(f"{url}/v1/spend", params={"tenant": "globex"}, headers=_bearer(admin)).json()
    assert one["tenant"] == "globex" and one["total_usd"] == pytest.approx(g["cost"]["actual_usd"], abs=1e-6)
    assert one["budget"]["daily_usd"] == 3.0

    own = httpx.get(f"{url}/v1/spend", params={"group_by": "tenant"}, headers=_bearer(globex)).json()
    assert [s["key"] for s in own["series"]] == ["globex"]
    other = httpx.get(f"{url}/v1/spend", params={"tenant": "acme"}, headers=_bearer(globex))
    assert other.status_code == 403 and other.json()["error"]["param"] == "tenant"
    assert httpx.get(f"{url}/v1/spend").status_code == 401


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"since": "7 days"}, "since"),
        ({"since": "0d"}, "since"),
        ({"since": "400d"}, "since"),
        ({"since": "120d", "bucket": "hour"}, "bucket"),
        ({"bucket": "minute"}, "bucket"),
        ({"group_by": "colour"}, "group_by"),
    ],
)
def test_bad_parameters_are_400s_that_name_them(shared: tuple[str, str, str, str], params: dict,
                                                param: str) -> None:  # fmt: skip
    url, acme, _globex, _admin = shared
    r = httpx.get(f"{url}/v1/spend", params=params, headers=_bearer(acme))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["code"] == "invalid_parameter" and error["message"]


def test_the_openapi_document_describes_spend_and_its_errors(shared: tuple[str, str, str, str]) -> None:
    url = shared[0]
    op = httpx.get(f"{url}/docs/openapi.json").json()["paths"]["/v1/spend"]["get"]
    assert {"400", "401", "403", "500"} <= set(op["responses"])
    assert {p["name"] for p in op["parameters"]} >= {"since", "bucket", "group_by", "tenant"}
    assert op["security"] == [{"bearer": []}]
