"""The console (``/console``) in a real browser (Debian's headless Chromium, driven by Playwright) over the real
service with the provider emulators, offline: every request that would leave localhost is aborted and recorded.

Each test does what a person would (upload, paint with the mouse, click) and checks what the page shows against
what the API answers. Screenshots go to ``tests/artifacts/console-PAGE.png``; with ``EDITGATE_DOCS_SHOTS=1`` also to
``docs/console/PAGE.png`` (the README's, refreshed on purpose, so a test run leaves the checkout clean).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.browser import ARTIFACTS, LOCAL_HOSTS, chromium
from tests.conftest import FIXTURES, cloud_settings

ROOT = Path(__file__).resolve().parents[1]
DOCS_SHOTS = ROOT / "docs" / "console"
WAIT_MS = 60_000
"""How long a step may take before the test fails: a bound against hanging, never a measured expectation."""

EXPERIMENT = "console-ab"
POLICY_EXTRA = f"""
experiments:
  - name: {EXPERIMENT}
    applies_to_rules: [standard-tier]
    sticky_by: key
    arms:
      - {{name: gemini, weight: 1, route: gemini}}
      - {{name: images, weight: 1, route: openai-images}}
budgets:
  default_daily_usd: 5.0
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def console_server(
    make_server: Callable[..., str], emulator: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An editgate with the emulators as its cloud providers, an experiment and a daily budget; the emulator
    spaces its streamed previews so a page that subscribes after the edit started still sees them live."""
    policy = tmp_path_factory.mktemp("policy") / "policy.yaml"
    policy.write_text((ROOT / "policies" / "default.yaml").read_text() + POLICY_EXTRA)
    url = make_server(policy_file=policy, **cloud_settings(emulator))
    plan = {"endpoints": {"images": {"partial_interval_ms": 700}}}
    httpx.put(f"{emulator}/_emulator/config", json=plan).raise_for_status()
    yield url
    httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()


class OfflinePage:
    """A page whose requests are all recorded; any that would leave localhost is aborted."""

    def __init__(self, browser: Browser, width: int = 1280, height: int = 1000) -> None:
        self.requested: list[str] = []
        self.page_errors: list[str] = []
        self.csp_violations: list[str] = []
        self.page: Page = browser.new_page(viewport={"width": width, "height": height})
        self.page.route("**/*", self._route)
        self.page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        self.page.on("console", self._console)

    def _route(self, route: Route) -> None:
        url = route.request.url
        self.requested.append(url)
        if urlsplit(url).scheme in ("blob", "data") or urlsplit(url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            route.abort("internetdisconnected")

    def _console(self, message: object) -> None:
        text = getattr(message, "text", "")
        if "Content Security Policy" in text:
            self.csp_violations.append(text)

    @property
    def external(self) -> list[str]:
        return [u for u in self.requested if urlsplit(u).scheme in ("http", "https")
                and urlsplit(u).hostname not in LOCAL_HOSTS]  # fmt: skip

    def check_clean(self) -> None:
        assert self.external == [], f"the console reached beyond localhost: {self.external}"
        assert self.page_errors == []
        assert self.csp_violations == []


@pytest.fixture()
def console(browser: Browser, console_server: str) -> Iterator[OfflinePage]:
    offline = OfflinePage(browser)
    yield offline
    offline.page.close()


def screenshot(page: Page, name: str) -> None:
    """The page as a person sees it, kept as a test artifact (and, asked for, as the README's copy)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("EDITGATE_DOCS_SHOTS") == "1":
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SHOTS / f"{name}.png")


def paint_stroke(page: Page) -> None:
    stage = page.locator(".stage")
    box = stage.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.15, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.35, steps=12)
    page.mouse.up()


def upload_and_describe(page: Page, server: str, fixture: str = "coffee.png") -> None:
    page.goto(f"{server}/console#/edit")
    page.set_input_files("#source-file", str(FIXTURES / fixture))
    expect(page.locator(".stage-mask")).to_be_visible(timeout=WAIT_MS)
    page.fill("textarea[name=prompt]", "make the background a sunny beach")


def test_root_redirects_and_console_responses_carry_a_strict_csp(console_server: str) -> None:
    root = httpx.get(f"{console_server}/", follow_redirects=False)
    assert root.status_code == 302 and root.headers["location"] == "/console"
    for path in ("/console", "/console/static/js/app.js", "/console/static/vendor/uplot/uPlot.esm.js"):
        r = httpx.get(f"{console_server}{path}")
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "img-src 'self' blob: data:" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
    page = httpx.get(f"{console_server}/console").text
    assert "<script>" not in page and "http://" not in page and "https://" not in page  # nothing inline, nothing remote


def test_edit_page_mask_route_preview_progress_result_and_feedback(console: OfflinePage, console_server: str) -> None:
    page = console.page
    upload_and_describe(page, console_server)
    expect(page.get_by_text("development mode", exact=True)).to_be_visible()

    coverage = page.locator(".coverage")
    expect(coverage).to_have_text("coverage 0.0 %")
    paint_stroke(page)
    expect(coverage).not_to_have_text("coverage 0.0 %")
    painted = float(coverage.inner_text().split()[1])
    assert 0 < painted < 100
    page.get_by_role("button", name="Undo").click()
    expect(coverage).to_have_text("coverage 0.0 %")
    page.get_by_role("button", name="Redo").click()
    expect(coverage).to_have_text(f"coverage {painted:.1f} %")

    rule = page.get_by_test_id("route-rule")
    expect(rule).to_have_text("standard-tier", timeout=WAIT_MS)
    page.check("input[name=tier][value=pro]")
    expect(rule).to_have_text("pro-masked", timeout=WAIT_MS)  # the preview followed the change
    preview = page.get_by_test_id("route-preview")
    expect(preview.locator("table.candidates tbody tr").first).to_contain_text("openai-images")
    page.check("input[name=protect][value=background]")
    screenshot(page, "edit")

    page.get_by_test_id("run").click()
    expect(page.get_by_test_id("partial").first).to_be_visible(timeout=WAIT_MS)  # a live preview arrived
    result = page.get_by_test_id("result")
    expect(result).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_test_id("phase")).to_have_text("succeeded")
    expect(page.get_by_test_id("provider")).to_have_text("openai-images")
    expect(result.locator(".heatmap-img")).to_be_visible(timeout=WAIT_MS)
    assert result.locator(".heatmap-img").evaluate("img => img.naturalWidth") == 600
    expect(result.get_by_test_id("cost")).to_contain_text("actual $")

    edit_id = page.locator(".progress dd").first.inner_text()
    record = httpx.get(f"{console_server}/v1/edits/{edit_id}").json()
    assert record["status"] == "succeeded" and record["provider"] == "openai-images"
    assert record["settings"]["protect"] == ["background"] and record["settings"]["tier"] == "pro"
    assert record["mask"]["coverage"] == pytest.approx(painted / 100, abs=0.01)  # the stroke became the mask
    assert record["route"]["rule"] == "pro-masked"

    with page.expect_download() as stored:
        result.get_by_role("button", name="Download PNG (as stored").click()
    image = httpx.get(f"{console_server}/v1/files/{record['image']['id']}").content
    assert Path(stored.value.path()).read_bytes() == image  # the stored result, byte for byte
    with page.expect_download() as converted:
        result.get_by_role("button", name="Download JPEG").click()
    assert converted.value.suggested_filename == f"{edit_id}-1.jpg"
    assert Path(converted.value.path()).read_bytes()[:3] == b"\xff\xd8\xff"

    result.locator("select[name=verdict]").select_option("accepted")
    result.locator("select[name=rating]").select_option("5")
    result.locator("input[name=reason]").fill("kept the cup")
    result.get_by_role("button", name="Send feedback").click()
    expect(result.locator(".feedback .status")).to_contain_text("Feedback recorded (accepted, 5/5)")
    screenshot(page, "edit-result")
    console.check_clean()


def test_edit_page_shows_the_apis_upload_error_next_to_the_field(console: OfflinePage, console_server: str,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    page = console.page
    page.goto(f"{console_server}/console#/edit")
    fake = tmp_path / "photo.png"
    fake.write_bytes(b"GIF89a" + b"\0" * 64)  # named .png, but its bytes say otherwise
    page.set_input_files("#source-file", str(fake))
    error = page.locator(".field[data-param=image] .err")
    expect(error).to_contain_text("not a PNG, JPEG or WebP")
    expect(page.locator(".stage-mask")).to_be_hidden()
    console.check_clean()


def test_edit_page_works_at_phone_width(browser: Browser, console_server: str) -> None:
    phone = OfflinePage(browser, width=390, height=844)
    page = phone.page
    upload_and_describe(page, console_server)
    expect(page.get_by_test_id("route-rule")).to_have_text("standard-tier", timeout=WAIT_MS)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at phone width"
    page.screenshot(path=str(ARTIFACTS / "console-edit-phone.png"), full_page=False)
    phone.check_clean()
    page.close()


def api_edit(server: str, **fields: str) -> dict:
    """An edit made through the API (coffee.png with its background mask), as another client would."""
    files = {"image": ("coffee.png", (FIXTURES / "coffee.png").read_bytes(), "image/png"),
             "mask": ("mask.png", (FIXTURES / "coffee_background_mask.png").read_bytes(), "image/png")}  # fmt: skip
    data = {"prompt": "make the background a sunny beach", "tier": "pro", **fields}
    r = httpx.post(f"{server}/v1/edits", files=files, data=data, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def test_session_page_tree_branch_compare_and_delete(console: OfflinePage, console_server: str) -> None:
    page = console.page
    edit = api_edit(console_server)
    session = edit["session_id"]
    page.goto(f"{console_server}/console#/session/{session}")
    tree = page.get_by_test_id("tree")
    expect(tree.locator(".node")).to_have_count(2, timeout=WAIT_MS)
    expect(page.get_by_test_id("version-detail")).to_contain_text("make the background a sunny beach")
    expect(page.get_by_test_id("version-detail")).to_contain_text("openai-images")

    tree.locator(".node[data-version='0'] button.pick").click()  # branch from the source, beside v1
    page.get_by_role("button", name="Continue from v0").click()
    expect(page.locator(".stage-mask")).to_be_visible(timeout=WAIT_MS)
    page.fill("textarea[name=prompt]", "make the background a snowy mountain")
    expect(page.get_by_test_id("route-rule")).to_have_text("standard-tier", timeout=WAIT_MS)
    page.get_by_test_id("run").click()
    expect(page.get_by_test_id("result")).to_be_visible(timeout=WAIT_MS)

    view = httpx.get(f"{console_server}/v1/sessions/{session}").json()
    branch = [v for v in view["versions"] if v["number"] == 2]
    assert branch and branch[0]["parent"] == 0 and branch[0]["prompt"] == "make the background a snowy mountain"

    page.goto(f"{console_server}/console#/session/{session}/2")
    expect(tree.locator(".node")).to_have_count(3, timeout=WAIT_MS)
    assert tree.locator(".node[data-version='0'] + ul > li > .node").count() == 2  # v1 and v2 both hang off v0
    compare = page.get_by_test_id("compare")
    compare.locator("select[name=a]").select_option("1")
    compare.locator("select[name=b]").select_option("2")
    compare.get_by_role("button", name="Compare").click()
    expect(compare.locator(".heatmap-img")).to_be_visible(timeout=WAIT_MS)
    drift = httpx.get(f"{console_server}/v1/sessions/{session}/compare", params={"a": 1, "b": 2}).json()["drift"]
    expect(compare.get_by_test_id("drift")).to_contain_text(f"mean difference {drift['mean_abs_diff']}")
    screenshot(page, "session")

    page.get_by_role("button", name="Delete session…").click()
    page.get_by_role("button", name="Really delete").click()
    expect(page.get_by_role("status").filter(has_text="are gone")).to_be_visible(timeout=WAIT_MS)
    assert httpx.get(f"{console_server}/v1/sessions/{session}").status_code == 404
    console.check_clean()


def test_compare_page_runs_three_providers_and_records_a_winner(console: OfflinePage, console_server: str) -> None:
    page = console.page
    page.goto(f"{console_server}/console#/compare")
    providers = page.get_by_test_id("providers")
    expect(providers.locator("input[value=gemini]")).to_be_checked(timeout=WAIT_MS)
    expect(providers.locator("input[value=local]")).not_to_be_checked()
    page.set_input_files("#compare-file", str(FIXTURES / "coffee.png"))
    expect(page.locator(".stage-mask")).to_be_visible(timeout=WAIT_MS)
    paint_stroke(page)
    page.fill("textarea[name=prompt]", "make the saucer blue")
    page.get_by_role("button", name="Run compare").click()
    grid = page.get_by_test_id("compare-grid")
    expect(grid.locator(".ccell")).to_have_count(3, timeout=WAIT_MS)
    for name in ("openai-images", "openai-responses", "gemini"):
        cell = grid.locator(f".ccell[data-provider='{name}']")
        expect(cell.locator("img")).to_be_visible(timeout=WAIT_MS)
        expect(cell).to_contain_text("Cost")
    session = page.get_by_test_id("compare-session").locator("a").inner_text()
    versions = httpx.get(f"{console_server}/v1/sessions/{session}").json()["versions"]
    assert sorted(v["provider"] for v in versions if v["number"] > 0) == ["gemini", "openai-images", "openai-responses"]
    gemini = grid.locator(".ccell[data-provider='gemini']")
    gemini.get_by_role("button", name="Pick as winner").click()
    expect(gemini.locator(".status")).to_have_text("Winner: recorded as accepted.", timeout=WAIT_MS)
    expect(grid.locator(".ccell.winner")).to_have_count(1)
    expect(grid.locator(".ccell[data-provider='openai-images'] .status")).to_have_text("Recorded as rejected.")
    screenshot(page, "compare")
    console.check_clean()


def test_experiments_page_draws_the_apis_report_with_intervals(console: OfflinePage, console_server: str) -> None:
    for i in range(6):
        edit = api_edit(console_server, tier="standard", experiment_key=f"user-{i}")
        assert edit["route"]["experiment"] == EXPERIMENT
        verdict = "accepted" if i % 3 else "rejected"
        httpx.post(f"{console_server}/v1/edits/{edit['id']}/feedback", json={"verdict": verdict}).raise_for_status()
    report = httpx.get(f"{console_server}/v1/experiments/{EXPERIMENT}/report").json()
    assert {a["arm"] for a in report["arms"]} == {"gemini", "images"}

    page = console.page
    page.goto(f"{console_server}/console#/experiments")
    page.get_by_role("link", name=EXPERIMENT).click()
    box = page.get_by_test_id("report")
    rows = box.locator("table.arms tbody tr")
    expect(rows).to_have_count(len(report["arms"]), timeout=WAIT_MS)
    for row, arm in zip(rows.all(), report["arms"], strict=True):
        cells = row.locator("td").all_inner_texts()
        assert cells[0] == arm["arm"] and cells[1] == str(arm["count"])
        assert cells[7] == str(arm["feedback_count"])
    expect(box.get_by_test_id("chart-acceptance").locator("g.bar")).to_have_count(len(report["arms"]))
    diff = report["differences"][0]
    bars = box.get_by_test_id("chart-acceptance-diff").locator("g.bar line")
    if diff["acceptance_ci95"] is not None:
        expect(bars).to_have_count(3)  # the interval and its two whiskers
    expect(box).to_contain_text(f"{diff['arm']} \u2212 {diff['versus']}")
    screenshot(page, "experiments")
    console.check_clean()


def candidate_moving_pro_masked_to_gemini() -> str:
    text = (ROOT / "policies" / "default.yaml").read_text()
    old = "    when: {tier: pro, has_mask: true}\n    route: openai-images\n    fallbacks: [gemini]\n"
    assert old in text
    new = "    when: {tier: pro, has_mask: true}\n    route: gemini\n    fallbacks: [openai-images]\n"
    return text.replace(old, new)


def test_routing_page_shows_the_running_policy_and_live_breakers(console: OfflinePage, console_server: str) -> None:
    policy = httpx.get(f"{console_server}/v1/policy").json()
    page = console.page
    page.goto(f"{console_server}/console#/routing")
    rules = page.get_by_test_id("policy").locator("table.rules tbody tr")
    expect(rules).to_have_count(len(policy["rules"]), timeout=WAIT_MS)
    assert [r.locator("td").nth(1).inner_text() for r in rules.all()] == [r["name"] for r in policy["rules"]]
    breakers = page.get_by_test_id("breakers")
    for name, state in policy["breakers"].items():
        expect(breakers.locator(f"[data-provider='{name}']")).to_have_text(state)
    expect(page.get_by_test_id("policy")).to_contain_text(EXPERIMENT)
    expect(page.get_by_test_id("policy")).to_contain_text("$5.00/day")
    screenshot(page, "routing")
    console.check_clean()


def test_routing_page_what_if_moves_a_rule_from_openai_images_to_gemini(console: OfflinePage,
                                                                        console_server: str) -> None:  # fmt: skip
    api_edit(console_server)  # a pro masked edit: pro-masked -> openai-images today
    candidate = candidate_moving_pro_masked_to_gemini()
    answer = httpx.post(f"{console_server}/v1/route/what-if", json={"policy": candidate, "since": "7d"}, timeout=120)
    assert answer.status_code == 200, answer.text
    expected = answer.json()
    page = console.page
    page.goto(f"{console_server}/console#/routing")
    box = page.get_by_test_id("what-if")
    box.locator("textarea[name=policy]").fill(candidate)
    box.get_by_role("button", name="Run what-if").click()
    result = page.get_by_test_id("what-if-result")
    expect(result.get_by_test_id("wi-changed")).to_have_text(str(expected["changed"]), timeout=WAIT_MS)
    expect(result.get_by_test_id("wi-edits")).to_have_text(str(expected["edits"]))
    expect(result.get_by_test_id("wi-before")).to_have_text(f"${expected['cost']['before_usd']:.4f}")
    # other tests' edits on this server may move too: this test's is the pro-masked one
    mine = ("openai-images", "pro-masked")
    move = next(m for m in expected["moves"] if (m["from"]["provider"], m["from"]["rule"]) == mine)
    assert move["to"]["provider"] == "gemini"
    row = result.locator("table.moves tbody tr").filter(has_text="pro-masked").first
    assert row.locator("td").all_inner_texts() == ["pro-masked", "openai-images", move["to"]["rule"], "gemini",
                                                   str(move["count"])]  # fmt: skip
    screenshot(page, "routing-what-if")
    console.check_clean()


def test_spend_page_draws_cost_by_grouping_with_the_budget_line(console: OfflinePage, console_server: str) -> None:
    api_edit(console_server)
    page = console.page
    page.goto(f"{console_server}/console#/spend")
    cost = page.get_by_test_id("cost-chart")
    expect(cost.locator("canvas")).to_be_visible(timeout=WAIT_MS)
    expect(cost.locator(".u-legend")).to_contain_text("budget $5.00/day")
    for group_by in ("provider", "rule"):
        page.locator("select[name=group_by]").select_option(group_by)
        api = httpx.get(f"{console_server}/v1/spend", params={"since": "7d", "bucket": "day", "group_by": group_by})
        expected = [[s["label"], f"${s['total_usd']:.4f}"] for s in api.json()["series"]]
        rows = page.get_by_test_id("spend-summary").locator("table tbody tr")
        expect(rows.first.locator("td").first).to_have_text(expected[0][0], timeout=WAIT_MS)
        shown = [[r.locator("td").nth(0).inner_text(), r.locator("td").nth(2).inner_text()] for r in rows.all()]
        assert shown == expected
    expect(page.get_by_test_id("latency-chart").locator("canvas")).to_be_visible()
    page.locator("select[name=group_by]").select_option("provider")
    expect(page.get_by_test_id("spend-summary").locator("table th").first).to_have_text("provider", timeout=WAIT_MS)
    expect(cost.locator("canvas")).to_be_visible(timeout=WAIT_MS)
    screenshot(page, "spend")
    console.check_clean()


def test_sign_in_keeps_the_key_in_session_storage_and_sends_it_as_a_bearer_header(
    browser: Browser, make_server: Callable[..., str], emulator: str, tmp_path: Path
) -> None:
    from tests.test_admin_scope import _key

    data_dir = tmp_path / "data"
    url = make_server(data_dir=data_dir, **cloud_settings(emulator))
    with ThreadPoolExecutor(1) as pool:  # the CLI runs its own event loop; Playwright's is running in this thread
        key = pool.submit(_key, data_dir, "--tenant", "acme").result()
    offline = OfflinePage(browser)
    page = offline.page
    authorized: list[str] = []
    bearer = f"Bearer {key}"
    page.on("request", lambda r: authorized.append(r.url) if r.headers.get("authorization") == bearer else None)
    page.goto(f"{url}/console")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("development mode", exact=True)).to_have_count(0)
    expect(page.get_by_role("navigation")).to_be_hidden()  # no page is reachable before signing in

    page.get_by_label("API key").fill("eg_not_a_key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".signin .err")).to_contain_text("not valid")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("signed in", exact=True)).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".chip").first).to_be_visible(timeout=WAIT_MS)
    assert page.evaluate("() => sessionStorage.getItem('editgate.apiKey')") == key
    assert page.evaluate("() => document.cookie") == "" and page.context.cookies() == []

    upload_and_describe(page, url)  # a reload of the tab stays signed in (sessionStorage lives with the tab)
    expect(page.get_by_test_id("route-rule")).to_have_text("standard-tier", timeout=WAIT_MS)
    assert any(u.endswith("/v1/route/explain") for u in authorized)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=WAIT_MS)
    assert page.evaluate("() => sessionStorage.getItem('editgate.apiKey')") is None
    screenshot(page, "sign-in")
    offline.check_clean()
    page.close()


@pytest.mark.parametrize("route", ["session", "compare", f"experiments/{EXPERIMENT}", "routing", "spend"])
def test_every_page_fits_a_phone_screen(browser: Browser, console_server: str, route: str) -> None:
    if route.startswith("experiments"):
        api_edit(console_server, tier="standard", experiment_key="phone")
    phone = OfflinePage(browser, width=390, height=844)
    page = phone.page
    page.goto(f"{console_server}/console#/{route}")
    expect(page.locator("main h1")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("main .card").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"#/{route} scrolls sideways by {overflow}px at phone width"
    page.screenshot(path=str(ARTIFACTS / f"console-phone-{route.split('/')[0]}.png"), full_page=True)
    phone.check_clean()
    page.close()


def test_outpaint_framing_matches_the_canvas_the_api_builds(console: OfflinePage, console_server: str) -> None:
    page = console.page
    upload_and_describe(page, console_server)
    page.select_option("select[name=mode]", "outpaint")
    page.select_option("select[name=aspect]", "9:16")
    page.select_option("select[name=anchor]", "top")
    frame = page.locator(".stage-frame")
    expect(frame).to_be_visible()
    files = {"image": ("coffee.png", (FIXTURES / "coffee.png").read_bytes(), "image/png")}
    data = {"prompt": "extend the table", "mode": "outpaint", "aspect": "9:16", "anchor": "top"}
    features = httpx.post(f"{console_server}/v1/route/explain", files=files, data=data).json()["features"]
    assert frame.get_attribute("title") == f"outpaint canvas {features['out_w']}\u00d7{features['out_h']}"
    stage, drawn, image = (page.locator(s).bounding_box() for s in (".stage", ".stage-frame", ".stage-img"))
    assert stage and drawn and image
    assert drawn["y"] >= stage["y"] - 1 and drawn["y"] + drawn["height"] <= stage["y"] + stage["height"] + 1  # fits
    assert abs(image["y"] - drawn["y"]) <= 1  # anchored at the top
    console.check_clean()


CONSOLE_JS = ROOT / "router" / "console" / "static" / "js"


def test_console_scripts_never_parse_markup_or_strings_as_code() -> None:
    forbidden = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "setTimeout('", 'setTimeout("')  # fmt: skip
    scripts = sorted(CONSOLE_JS.rglob("*.js"))
    assert len(scripts) >= 10
    for script in scripts:
        text = script.read_text()
        found = [f for f in forbidden if f in text]
        assert not found, f"{script.relative_to(ROOT)} uses {found}"
    index = (ROOT / "router" / "console" / "static" / "index.html").read_text()
    assert "<script>" not in index and re.search(r"\son[a-z]+\s*=", index) is None  # no inline script or handler


def test_data_from_the_api_is_shown_as_text_never_as_markup(console: OfflinePage, console_server: str) -> None:
    hostile = "<img src=x onerror=\"document.title='pwned'\"> & <b>bold</b>"
    edit = api_edit(console_server, prompt=hostile)
    page = console.page
    page.goto(f"{console_server}/console#/session/{edit['session_id']}/1")
    detail = page.get_by_test_id("version-detail")
    expect(detail).to_contain_text(hostile, timeout=WAIT_MS)
    assert page.locator("img[src='x']").count() == 0 and page.locator("main b").count() == 0
    assert page.title() != "pwned"
    console.check_clean()


def test_session_page_retries_a_failed_version(console: OfflinePage, console_server: str, emulator: str) -> None:
    def plan(faults: dict[str, float]) -> None:
        endpoints = {e: {"faults": faults, "partial_interval_ms": 700 if e == "images" else 0}
                     for e in ("images", "responses", "gemini")}  # fmt: skip
        httpx.put(f"{emulator}/_emulator/config", json={"endpoints": endpoints}).raise_for_status()

    files = {"image": ("coffee.png", (FIXTURES / "coffee.png").read_bytes(), "image/png")}
    data = {"prompt": "make it autumn", "tier": "pro", "provider": "openai-images"}
    plan({"server_error": 1.0})
    try:
        failed = httpx.post(f"{console_server}/v1/edits", files=files, data=data, timeout=120)
    finally:
        plan({})
    assert failed.status_code >= 500, failed.text
    edit_id = failed.json()["error"]["edit_id"]
    session = httpx.get(f"{console_server}/v1/edits/{edit_id}").json()["session_id"]

    page = console.page
    page.goto(f"{console_server}/console#/session/{session}/1")
    detail = page.get_by_test_id("version-detail")
    expect(detail.locator(".state-failed").first).to_be_visible(timeout=WAIT_MS)
    page.get_by_role("button", name="Retry v1").click()
    tree = page.get_by_test_id("tree")
    expect(tree.locator(".node")).to_have_count(3, timeout=WAIT_MS)
    expect(detail).to_contain_text("retry of v1")
    expect(detail.locator(".state-succeeded").first).to_be_visible()
    versions = httpx.get(f"{console_server}/v1/sessions/{session}").json()["versions"]
    assert [(v["number"], v["status"], v["retry_of"]) for v in versions] == [
        (0, "succeeded", None), (1, "failed", None), (2, "succeeded", 1)]  # fmt: skip
    console.check_clean()


def test_edit_page_shows_the_apis_own_error_next_to_the_field_at_fault(console: OfflinePage,
                                                                       console_server: str) -> None:  # fmt: skip
    page = console.page
    upload_and_describe(page, console_server)
    expect(page.get_by_test_id("route-rule")).to_be_visible(timeout=WAIT_MS)
    page.fill("textarea[name=prompt]", "x" * 2001)  # the test server's limit is 2,000 characters
    files = {"image": ("coffee.png", (FIXTURES / "coffee.png").read_bytes(), "image/png")}
    answer = httpx.post(f"{console_server}/v1/route/explain", files=files, data={"prompt": "x" * 2001}).json()
    assert answer["error"]["param"] == "prompt"
    error = page.locator(".field[data-param=prompt] .err")
    expect(error).to_contain_text(answer["error"]["message"], timeout=WAIT_MS)
    expect(page.locator("textarea[name=prompt]")).to_have_attribute("aria-invalid", "")
    page.fill("textarea[name=prompt]", "make the background a sunny beach")
    expect(error).to_be_empty(timeout=WAIT_MS)
    expect(page.get_by_test_id("route-rule")).to_be_visible(timeout=WAIT_MS)
    console.check_clean()


@pytest.mark.parametrize("fmt", ["gif", "svg"])
def test_edit_page_delivers_gif_and_svg_as_the_model_made_them(console: OfflinePage, console_server: str,
                                                               fmt: str) -> None:  # fmt: skip
    page = console.page
    upload_and_describe(page, console_server)
    page.select_option("select[name=output_format]", fmt)
    expect(page.get_by_test_id("route-rule")).to_have_text("newer-model-params", timeout=WAIT_MS)
    page.get_by_test_id("run").click()
    result = page.get_by_test_id("result")
    expect(result).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_test_id("phase")).to_have_text("succeeded")
    expect(result).to_contain_text("delivered as the model made it")
    expect(result.get_by_test_id("heatmap")).to_contain_text(
        f"No heat-map: a {fmt.upper()} is delivered as the model made it"
    )
    shown = result.locator("img").first
    expect(shown).to_be_visible(timeout=WAIT_MS)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=shown.element_handle(), timeout=WAIT_MS)
    assert result.get_by_role("button", name="Download PNG").count() == 0, "no raster copy of an animation or vector"
    edit_id = page.locator(".progress dd").first.inner_text()
    record = httpx.get(f"{console_server}/v1/edits/{edit_id}").json()
    with page.expect_download() as stored:
        result.get_by_role("button", name=f"Download {fmt.upper()} (as stored").click()
    assert stored.value.suggested_filename == f"{edit_id}-1.{fmt}"
    image = httpx.get(f"{console_server}/v1/files/{record['image']['id']}").content
    assert Path(stored.value.path()).read_bytes() == image
    screenshot(page, f"edit-result-{fmt}")
    console.check_clean()
