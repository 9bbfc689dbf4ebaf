"""Cost to the cent fraction, Prometheus values, compare side by side, experiment reports, shadows."""

from __future__ import annotations

import asyncio
import io
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from providers.gemini_image import REGION_SENTENCE
from router.cli import main
from router.storage.db import database_url, make_engine
from router.storage.models import Attempt, Feedback, Version
from router.storage.store import Store
from tests.conftest import fixture_bytes

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")
PROMPT = "replace the table with sand"  # 27 UTF-8 bytes -> ceil(27 / 4) = 7 text tokens
DEFAULT = yaml.safe_load(resources.files("policies").joinpath("default.yaml").read_text())


def _edit(client: httpx.Client, **fields: str) -> dict:
    files = [("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))]
    r = client.post("/v1/edits", files=files, data={"prompt": PROMPT, **fields})
    assert r.status_code == 200, r.text
    return {**r.json(), "_headers": dict(r.headers)}


# Input image: 600x400 -> shortest side scaled to 512 -> 768x512 -> 2 tiles of 512 -> 65 + 2 * 129 = 323 tokens.
# Output: 600x400 snaps to 992x672 on gpt-image-2; "final" = high = 7040 tokens per 1024x1024,
#         ceil(7040 * 992 * 672 / 1024**2) = 4476 tokens.
OPENAI_IMAGES = (7 * 5.00 + 323 * 8.00 + 4476 * 30.00) / 1e6  # text in $5/M, image in $8/M, image out $30/M
# The Responses mainline model (gpt-5.4-mini, $0.75/M in, $4.50/M out) reads 7 text + 85 per image = 92 tokens
# and writes 24; the image tool is billed as above.
OPENAI_RESPONSES = OPENAI_IMAGES + (92 * 0.75 + 24 * 4.50) / 1e6
# Gemini: the prompt plus "\n\n" and the region sentence, 4 bytes a token; two input images (source and the
# region) at a flat 1120 each; a 1K output is 1120 image tokens; no text part (IMAGE only); 260 thinking
# tokens (usageMetadata.thoughtsTokenCount), billed as output text at $3/M.
GEMINI_TEXT = math.ceil((27 + 2 + len(REGION_SENTENCE)) / 4)
GEMINI = ((GEMINI_TEXT + 2 * 1120) * 0.50 + 1120 * 60.00 + 260 * 3.00) / 1e6


@pytest.mark.parametrize(
    ("provider", "expected"),
    [("openai-images", OPENAI_IMAGES), ("openai-responses", OPENAI_RESPONSES), ("gemini", GEMINI), ("local", 0.0)],
)
def test_actual_cost_matches_a_hand_computation(cloud: httpx.Client, provider: str, expected: float) -> None:
    fields = {"provider": provider} if provider != "local" else {"provider": provider, "prompt": "remove the table"}
    body = _edit(cloud, **fields)
    assert body["cost"]["actual_usd"] == pytest.approx(expected, abs=1e-6)
    assert body["cost"]["estimated_usd"] == pytest.approx(expected, rel=0.01), "the estimate predicts the bill"
    assert body["cost"]["pricing_version"] == "2026-11-23"
    assert body["_headers"]["x-editgate-cost-usd"] == f"{expected:.6f}"
    assert body["_headers"]["x-editgate-provider"] == provider
    assert body["_headers"]["x-editgate-route-rule"] == "request.provider"
    parts = body["latency_ms"]
    assert parts["total"] >= parts["intake"] + parts["provider"] + parts["normalize"] - 1 and parts["queueing"] >= 0


def test_unpriced_model_reports_unknown_cost(make_server: Callable[..., str], emulator: str, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(yaml.safe_dump({"version": "t", "models": {"opencv-inpaint": {"per_million": {"images": 0}}}}))
    url = make_server(gemini_api_key="g", gemini_base_url=emulator, pricing_file=prices)
    with httpx.Client(base_url=url, timeout=60) as c:
        body = _edit(c, provider="gemini")
        assert body["cost"]["actual_usd"] is None and body["_headers"]["x-editgate-cost-usd"] == "unknown"
        families = {f.name: f for f in text_string_to_metric_families(c.get("/metrics").text)}
        unknown = [s.value for s in families["editgate_cost_unknown"].samples if s.name.endswith("_total")]
        assert unknown == [1.0]


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_expose_known_values(make_server: Callable[..., str], emulator: str) -> None:
    url = make_server(gemini_api_key="g", gemini_base_url=emulator)
    with httpx.Client(base_url=url, timeout=60) as c:
        removals = [_edit(c, prompt="remove the table") for _ in range(3)]
        gemini = [_edit(c) for _ in range(2)]  # standard tier, not a removal -> gemini
        failed = c.post("/v1/edits", files=[("image", ("c.png", COFFEE))], data={"prompt": "x", "mode": "variation",
                                                                                   "provider": "local"})  # fmt: skip
        assert failed.status_code == 422
        m = _samples(c.get("/metrics").text)

    def value(name: str, **labels: str) -> float:
        return m[(name, frozenset(labels.items()))]

    local = {"provider": "local", "model": "opencv-inpaint"}
    gem = {"provider": "gemini", "model": "gemini-3.1-flash-image"}
    assert value("editgate_requests_total", **local, rule="free-removal", outcome="ok") == 3
    assert value("editgate_requests_total", **gem, rule="standard-tier", outcome="ok") == 2
    none = {"provider": "none", "model": "none", "rule": "request.provider"}
    assert value("editgate_requests_total", **none, outcome="no_capable_provider") == 1
    assert value("editgate_cost_usd_total", **gem) == pytest.approx(sum(b["cost"]["actual_usd"] for b in gemini))
    assert value("editgate_route_decisions_total", rule="free-removal") == 3
    assert value("editgate_provider_latency_seconds_count", **local, outcome="ok") == 3
    assert value("editgate_image_tokens_total", provider="gemini", direction="output") == 2 * 1120
    assert value("editgate_tokens_total", **gem, kind="input_image_tokens") == 2 * 2240
    assert value("editgate_in_flight_edits") == 0
    assert value("editgate_image_megapixels_count", direction="input") == 5
    assert value("editgate_request_latency_seconds_count", outcome="ok") == 5
    assert all("tenant" not in dict(labels) for _, labels in m), "no tenant labels unless turned on"
    assert len(removals) == 3


def test_compare_three_cloud_providers_side_by_side(cloud: httpx.Client, stack_ledger: Callable[..., list]) -> None:
    files = [("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))]
    r = cloud.post("/v1/compare", params={"providers": "openai-images,openai-responses,gemini"}, files=files,
                   data={"prompt": PROMPT})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["provider"] for x in body["results"]] == ["openai-images", "openai-responses", "gemini"]
    for result in body["results"]:
        assert result["status"] == "succeeded" and result["emulated"] is True
        assert result["images"][0]["width"] == 600 and result["cost"]["actual_usd"] > 0
        assert result["latency_ms"]["total"] > 0 and result["preservation"]["region"] == "outside_mask"
    costs = {x["provider"]: x["cost"]["actual_usd"] for x in body["results"]}
    assert costs["gemini"] < costs["openai-images"] < costs["openai-responses"]
    tree = cloud.get(f"/v1/sessions/{body['session_id']}").json()
    assert sorted(v["provider"] for v in tree["versions"][1:]) == ["gemini", "openai-images", "openai-responses"]
    rows = stack_ledger(body["session_id"])
    assert len(rows) == 3 and all(row.comparison for row in rows)


def test_picks_between_compared_providers_feed_the_compare_report(cloud: httpx.Client) -> None:
    files = [("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))]
    before = cloud.get("/v1/experiments/compare/report")
    accepted_before = {a["arm"]: a["feedback_count"] for a in before.json()["arms"]} if before.is_success else {}
    body = cloud.post("/v1/compare", params={"providers": "openai-images,gemini"}, files=files,
                      data={"prompt": PROMPT}).json()  # fmt: skip
    winner, loser = body["results"]
    assert cloud.post(f"/v1/edits/{winner['id']}/feedback", json={"verdict": "accepted"}).status_code == 201
    assert cloud.post(f"/v1/edits/{loser['id']}/feedback", json={"verdict": "rejected"}).status_code == 201
    report = cloud.get("/v1/experiments/compare/report").json()
    arms = {a["arm"]: a for a in report["arms"]}
    assert {"openai-images", "gemini"} <= set(arms)
    for name in ("openai-images", "gemini"):
        assert arms[name]["feedback_count"] == accepted_before.get(name, 0) + 1
    if not accepted_before:  # the first picks on this server: the rates are exactly the picks
        assert (arms["openai-images"]["acceptance_rate"], arms["gemini"]["acceptance_rate"]) == (1.0, 0.0)


def test_compare_uses_policy_candidates_and_reports_errors(cloud: httpx.Client, faults: Callable[..., None]) -> None:
    faults("gemini", safety=1.0)
    files = [("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))]
    body = cloud.post("/v1/compare", files=files, data={"prompt": PROMPT, "tier": "pro"}).json()
    assert [x["provider"] for x in body["results"]] == ["openai-images", "gemini"]
    assert body["results"][1]["status"] == "failed" and body["results"][1]["error"]["code"] == "provider_rejected"


def _tiny_png(seed: int) -> tuple[bytes, bytes]:
    rng = np.random.default_rng(seed)
    buf, mbuf = io.BytesIO(), io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(buf, "PNG")
    mask = np.full((96, 128), 0, np.uint8)
    mask[30:60, 40:90] = 255
    Image.fromarray(mask).save(mbuf, "PNG")
    return buf.getvalue(), mbuf.getvalue()


def test_experiment_report_matches_the_ledger(make_server: Callable[..., str], emulator: str, tmp_path: Path) -> None:
    policy = json.loads(json.dumps(DEFAULT))
    policy["experiments"] = [
        {
            "name": "ab1",
            "sticky_by": "key",
            "applies_to_rules": ["standard-tier"],
            "arms": [
                {"name": "gemini", "weight": 50, "route": "gemini"},
                {"name": "openai", "weight": 50, "route": "openai-images"},
            ],
        }
    ]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(policy))
    data_dir = tmp_path / "data"
    url = make_server(data_dir=data_dir, policy_file=tmp_path / "p.yaml", openai_api_key="k",
                      openai_base_url=f"{emulator}/v1", gemini_api_key="g", gemini_base_url=emulator)  # fmt: skip
    image, mask = _tiny_png(1)

    def one(i: int) -> dict:
        files = [("image", ("i.png", image)), ("mask", ("m.png", mask))]
        data = {"prompt": f"make it blue {i}", "experiment_key": f"user-{i}"}
        body = httpx.post(f"{url}/v1/edits", files=files, data=data, timeout=60).json()
        if i % 3 == 0:
            verdict = "accepted" if i % 2 == 0 else "rejected"
            httpx.post(f"{url}/v1/edits/{body['id']}/feedback", json={"verdict": verdict}).raise_for_status()
        elif i % 5 == 0:
            httpx.post(f"{url}/v1/edits/{body['id']}/feedback", json={"rating": 5}).raise_for_status()
        return body

    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(one, range(240)))
    assert {b["route"]["arm"] for b in bodies} == {"gemini", "openai"}
    report = httpx.get(f"{url}/v1/experiments/ab1/report").json()

    async def ledger() -> tuple[list, list, dict]:
        store = Store(make_engine(database_url(None, data_dir)))
        try:
            async with store.tx() as db:
                from sqlalchemy import select

                attempts = list(await db.scalars(select(Attempt).where(Attempt.experiment == "ab1")))
                feedback = list(await db.scalars(select(Feedback).order_by(Feedback.id)))
                versions = {v.id: v for v in await db.scalars(select(Version))}
            return attempts, feedback, versions
        finally:
            await store.engine.dispose()

    attempts, feedback, versions = asyncio.run(ledger())
    verdict = {f.version_id: (f.verdict == "accepted") if f.verdict else f.rating >= 4 for f in feedback}
    by_arm: dict[str, list] = defaultdict(list)
    for a in attempts:
        by_arm[a.arm].append(a)
    assert report["edits"] == 240 and report["baseline"] == "gemini"
    for arm in report["arms"]:
        rows = by_arm[arm["arm"]]
        ok = [a for a in rows if a.outcome == "ok"]
        assert arm["count"] == len({a.version_id for a in rows}) and arm["succeeded"] == len(ok)
        assert arm["cost_total_usd"] == pytest.approx(sum(a.actual_usd for a in ok), abs=5e-7)
        assert arm["latency_p50_ms"] == pytest.approx(float(np.percentile([a.total_ms for a in ok], 50)), abs=0.05)
        judged = [verdict[a.version_id] for a in ok if a.version_id in verdict]
        assert arm["feedback_count"] == len(judged)
        assert arm["acceptance_rate"] == pytest.approx(sum(judged) / len(judged), abs=5e-5)
        drift = [versions[a.version_id].result["preservation"]["mean_abs_diff"] for a in ok]
        assert arm["preservation_mean"] == pytest.approx(float(np.mean(drift)), abs=5e-4)
    (diff,) = report["differences"]
    arms = {a["arm"]: a for a in report["arms"]}
    assert diff["cost_diff_usd"] == pytest.approx(
        arms["openai"]["cost_mean_usd"] - arms["gemini"]["cost_mean_usd"], abs=2e-6
    )
    lo, hi = diff["cost_ci95"]
    assert lo <= diff["cost_diff_usd"] <= hi and lo > 0, "openai-images costs more per edit, and the interval shows it"
    table = CliRunner().invoke(main, ["report", "ab1", "--data-dir", str(data_dir)])
    assert table.exit_code == 0 and "openai vs gemini" in table.output and "95% CI" in table.output


def test_shadow_traffic_is_recorded_but_never_returned(make_server: Callable[..., str], emulator: str,
                                                      tmp_path: Path) -> None:  # fmt: skip
    policy = json.loads(json.dumps(DEFAULT))
    policy["shadows"] = [{"name": "shadow-oai", "provider": "openai-images", "fraction": 1.0}]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(policy))
    url = make_server(policy_file=tmp_path / "p.yaml", openai_api_key="k", openai_base_url=f"{emulator}/v1",
                      gemini_api_key="g", gemini_base_url=emulator)  # fmt: skip
    with httpx.Client(base_url=url, timeout=60) as c:
        body = _edit(c)
        assert body["provider"] == "gemini" and len(body["images"]) == 1
        deadline = time.monotonic() + 20
        while (r := c.get("/v1/experiments/shadow-oai/report")).status_code != 200 or len(r.json()["arms"]) < 2:
            assert time.monotonic() < deadline, "the shadow was not recorded"
            time.sleep(0.1)
        arms = {a["arm"]: a for a in r.json()["arms"]}
        assert arms["primary"]["succeeded"] == 1 and arms["openai-images"]["succeeded"] == 1
        tree = c.get(f"/v1/sessions/{body['session_id']}").json()
        assert [v["number"] for v in tree["versions"]] == [0, 1], "the shadow stays out of the caller's tree"


def test_feedback_validation_and_isolation(cloud: httpx.Client) -> None:
    body = _edit(cloud, provider="gemini")
    assert cloud.post(f"/v1/edits/{body['id']}/feedback", json={}).status_code == 400
    assert cloud.post(f"/v1/edits/{body['id']}/feedback", json={"rating": 9}).status_code == 400
    ok = cloud.post(f"/v1/edits/{body['id']}/feedback", json={"verdict": "accepted", "rating": 5, "reason": "great"})
    assert ok.status_code == 201 and ok.json()["verdict"] == "accepted"
    assert cloud.post("/v1/edits/ver_" + "0" * 32 + "/feedback", json={"rating": 3}).status_code == 404
