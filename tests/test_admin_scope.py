"""Admin keys over real HTTP: a tenant sees only the policy that applies to it; the whole policy, the
reload status and (with ``EDITGATE_METRICS_AUTH``) ``/metrics`` need an admin key."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from router.cli import main
from tests.conftest import fixture_bytes
from tests.test_routing_integration import DEFAULT, policy_file

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")


def _key(data_dir: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["keys", "create", *args, "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    return result.output.split()[-1]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _tenant_policy(tmp_path: Path) -> Path:
    rules = [
        {"name": "globex-contract", "when": {"tenant": "globex"}, "route": "gemini"},
        {"name": "partners", "when": {"tenant": {"in": ["acme", "initech"]}}, "route": "local"},
        {"name": "masked-local", "when": {"tenant": {"ne": "hooli"}, "has_mask": True}, "route": "local"},
        *DEFAULT["rules"],
    ]
    budgets = {"default_daily_usd": 3.0, "tenants": {"acme": 5.0, "globex": 9.0}, "on_exceed": "reject"}
    return policy_file(tmp_path, rules=rules, budgets=budgets)


@pytest.fixture()
def keyed(make_server: Callable[..., str], tmp_path: Path) -> tuple[str, Path, str, str]:
    """A server with a tenant policy, a key for tenant `acme` and an admin key."""
    path = _tenant_policy(tmp_path)
    data_dir = tmp_path / "data"
    url = make_server(data_dir=data_dir, policy_file=path, metrics_auth=True)
    return url, path, _key(data_dir, "--tenant", "acme"), _key(data_dir, "--admin")


def test_a_tenant_sees_only_what_applies_to_it(keyed: tuple[str, Path, str, str]) -> None:
    url, path, acme, _admin = keyed
    r = httpx.get(f"{url}/v1/policy", headers=_bearer(acme))
    assert r.status_code == 200, r.text
    for secret in ("globex", "initech", "hooli", str(path.parent), "9.0"):
        assert secret not in r.text, secret
    body = r.json()
    assert body["tenant"] == "acme"
    assert body["budget"] == {"daily_usd": 5.0, "on_exceed": "reject"}
    names = [rule["name"] for rule in body["rules"]]
    assert names[:2] == ["partners", "masked-local"] and "globex-contract" not in names
    assert all("tenant" not in rule["when"] for rule in body["rules"])
    assert set(body["providers"]) == {"local"} and body["providers"]["local"]["model"] == "opencv-inpaint"
    assert "editgate-pro" in body["model_aliases"]
    assert "source" not in body and "budgets" not in body and "reload" not in body


def test_the_decision_trace_names_no_other_tenant(keyed: tuple[str, Path, str, str]) -> None:
    url, _path, acme, _admin = keyed
    files = [("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))]
    r = httpx.post(f"{url}/v1/route/explain", files=files, data={"prompt": "remove it"}, headers=_bearer(acme))
    assert r.status_code == 200, r.text
    assert r.json()["decision"]["rule"] == "partners"
    assert "globex" not in r.text


def test_an_admin_key_sees_the_whole_policy_and_its_reload_status(keyed: tuple[str, Path, str, str]) -> None:
    url, path, _acme, admin = keyed
    body = httpx.get(f"{url}/v1/policy", headers=_bearer(admin)).json()
    assert body["budgets"]["tenants"] == {"acme": 5.0, "globex": 9.0}
    assert body["source"] == str(path) and body["rules"][0]["name"] == "globex-contract"
    assert body["reload"]["error"] is None and body["reload"]["loaded_at"] > 0
    path.write_text("version: broken\nrules: [this is not a rule\n")
    deadline = time.monotonic() + 15
    while (reload := httpx.get(f"{url}/v1/policy", headers=_bearer(admin)).json()["reload"])["error"] is None:
        assert time.monotonic() < deadline, "the refused reload never showed in the status"
        time.sleep(0.1)
    assert "line" in reload["error"][0] and reload["failed_at"] >= reload["loaded_at"]


def test_metrics_need_an_admin_key_when_metrics_auth_is_on(keyed: tuple[str, Path, str, str]) -> None:
    url, _path, acme, admin = keyed
    assert httpx.get(f"{url}/metrics").status_code == 401
    refused = httpx.get(f"{url}/metrics", headers=_bearer(acme))
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "admin_required" and "admin key" in error["message"]
    assert httpx.get(f"{url}/metrics", headers=_bearer(admin)).status_code == 200


def test_without_keys_everything_works_locally(make_server: Callable[..., str], tmp_path: Path) -> None:
    url = make_server(data_dir=tmp_path, metrics_auth=True)
    assert httpx.get(f"{url}/metrics").status_code == 200
    body = httpx.get(f"{url}/v1/policy").json()
    assert "budgets" in body and "reload" in body, "the development tenant is the operator"


def test_an_experiment_shows_only_the_rules_the_tenant_can_see() -> None:
    from policies import parse_policy
    from policies.view import tenant_view

    data = {**DEFAULT, "rules": [{"name": "globex-deal", "when": {"tenant": "globex"}, "route": "gemini"},
                                 {"name": "masked", "when": {"has_mask": True}, "route": "local"}],
            "experiments": [{"name": "trial", "applies_to_rules": ["globex-deal", "masked"],
                             "arms": [{"name": "a", "weight": 1, "route": "local"}]},
                            {"name": "globex-only", "applies_to_rules": ["globex-deal"],
                             "arms": [{"name": "a", "weight": 1, "route": "local"}]}]}  # fmt: skip
    view = tenant_view(parse_policy(json.dumps(data)), "acme", {"local", "gemini"})
    assert [(e["name"], e["applies_to_rules"]) for e in view["experiments"]] == [("trial", ["masked"])]
    assert "globex" not in json.dumps(view)
