"""The docs page in a real browser (Debian's headless Chromium, driven by Playwright) with no network
beyond this machine: every request that would leave localhost is recorded and aborted, as a production
network without internet would."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route

from tests.browser import ARTIFACTS, LOCAL_HOSTS, chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


class OfflinePage:
    """A page whose requests are all recorded; any that would leave localhost is aborted."""

    def __init__(self, browser: Browser) -> None:
        self.requested: list[str] = []
        self.page_errors: list[str] = []
        self.page: Page = browser.new_page(viewport={"width": 1280, "height": 1400})
        self.page.route("**/*", self._route)
        self.page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))

    def _route(self, route: Route) -> None:
        url = route.request.url
        self.requested.append(url)
        if urlsplit(url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            route.abort("internetdisconnected")

    @property
    def external(self) -> list[str]:
        return [u for u in self.requested if urlsplit(u).hostname not in LOCAL_HOSTS]


@pytest.fixture()
def docs_page(browser: Browser, server: str) -> Iterator[OfflinePage]:
    offline = OfflinePage(browser)
    offline.page.goto(f"{server}/docs/", wait_until="load")
    yield offline
    offline.page.close()


def test_docs_page_renders_offline(docs_page: OfflinePage, tmp_path: Path) -> None:
    page = docs_page.page
    edits = page.locator('.opblock-summary-path[data-path="/v1/edits"]')
    edits.first.wait_for(state="visible", timeout=30_000)

    assert page.evaluate("typeof SwaggerUIBundle") == "function"
    assert page.locator(".opblock").count() >= 20  # every operation rendered, not only the first tag
    assert page.locator('.opblock-summary-path[data-path="/v1/images/edits"]').is_visible()
    assert page.locator("button.authorize").is_visible()

    screenshot = tmp_path / "docs.png"
    page.screenshot(path=str(screenshot), full_page=False)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(screenshot, ARTIFACTS / "docs.png")

    assert docs_page.external == [], f"the docs page reached beyond localhost: {docs_page.external}"
    assert docs_page.page_errors == []
    assert any(u.endswith(".js") for u in docs_page.requested)  # the assets were fetched, from this server


def test_authorize_offers_the_bearer_key_and_operations_show_the_error_shape(docs_page: OfflinePage) -> None:
    page = docs_page.page
    page.locator("button.authorize").first.click()
    dialog = page.locator(".dialog-ux .modal-ux")
    dialog.wait_for(state="visible", timeout=10_000)
    assert "bearer" in dialog.inner_text().lower()
    assert dialog.locator("input").count() >= 1  # where the API key goes
    page.locator(".dialog-ux .close-modal").click()

    page.locator('.opblock-post .opblock-summary-path[data-path="/v1/edits"]').first.click()
    responses = page.locator(".opblock.is-open .responses-table").first
    responses.wait_for(state="visible", timeout=10_000)
    codes = set(responses.locator("td.response-col_status").all_inner_texts())
    assert {"401", "402", "404", "409", "422", "429", "500", "502", "503", "504"} <= {c.split()[0] for c in codes}
    assert docs_page.external == []
