"""A synchronous edit writes at most two transactions (accept and finish), counted with SQLAlchemy's
engine events on the server's own engine, over real HTTP against the emulator."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from router.app import create_app
from router.settings import Limits, Settings, WebhookSettings
from router.threaded import serve_in_thread
from tests.conftest import TEST_LIMITS, fixture_bytes

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")


@pytest.fixture()
def counted(emulator: str, tmp_path: Path) -> Iterator[tuple[str, Callable[[], int]]]:
    """A server on the emulator and a function returning how many transactions committed so far."""
    keys = {"openai_api_key": "sk-test", "openai_base_url": f"{emulator}/v1", "gemini_api_key": "g-test",
            "gemini_base_url": emulator}  # fmt: skip
    quiet = {
        "lease_s": 3600.0,
        "recovery_interval_s": 3600.0,
        "queue_poll_s": 3600.0,
        "sweep_interval_s": 3600.0,
        "webhooks": WebhookSettings(poll_s=3600.0),
    }  # background loops: none of their commits fall in a count
    settings = Settings(data_dir=tmp_path, limits=Limits(**TEST_LIMITS), **keys, **quiet)
    app = create_app(settings)
    engine = app.state.gateway.store.engine.sync_engine
    commits: list[Any] = []
    event.listen(engine, "commit", lambda conn: commits.append(conn))
    with serve_in_thread(app) as url:
        yield url, lambda: len(commits)


def _edit(url: str, provider: str, **headers: str) -> dict:
    files = [("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))]
    data = {"prompt": "remove the background clutter" if provider == "local" else "a sandy beach", "provider": provider}
    r = httpx.post(f"{url}/v1/edits", files=files, data=data, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("provider", ["gemini", "openai-images", "local"])
def test_a_sync_edit_writes_at_most_two_transactions(counted: tuple[str, Callable[[], int]], provider: str) -> None:
    url, commits = counted
    _edit(url, provider)  # warm-up: tenant rows and the like
    before = commits()
    body = _edit(url, provider)
    assert body["status"] == "succeeded"
    assert commits() - before <= 2, f"{commits() - before} write transactions for one edit"


def test_with_an_idempotency_key_still_two(counted: tuple[str, Callable[[], int]]) -> None:
    url, commits = counted
    _edit(url, "gemini")
    before = commits()
    first = _edit(url, "gemini", **{"Idempotency-Key": "tx-count-1"})
    assert commits() - before <= 2, f"{commits() - before} write transactions for one edit with a key"
    replay = _edit(url, "gemini", **{"Idempotency-Key": "tx-count-1"})
    assert replay["id"] == first["id"]


def test_a_drop_in_edit_two_on_its_path_and_one_for_its_score(counted: tuple[str, Callable[[], int]]) -> None:
    """The drop-in's preservation score lands after the answer: one more small transaction, off the path."""
    url, commits = counted

    def drop_in() -> str:
        files = [("image", ("c.png", COFFEE, "image/png")), ("mask", ("m.png", MASK, "image/png"))]
        r = httpx.post(f"{url}/v1/images/edits", files=files, data={"model": "gpt-image-2", "prompt": "a sandy beach"},
                       timeout=60)  # fmt: skip
        assert r.status_code == 200, r.text
        return r.headers["x-editgate-edit-id"]

    warm = drop_in()
    while not httpx.get(f"{url}/v1/edits/{warm}", timeout=30).json().get("preservation"):
        time.sleep(0.05)
    before = commits()
    edit_id = drop_in()
    for _ in range(600):  # a cap that only ends a hang; nothing is timed
        if httpx.get(f"{url}/v1/edits/{edit_id}", timeout=30).json().get("preservation"):
            break
        time.sleep(0.05)
    assert commits() - before == 3, f"{commits() - before} write transactions for one drop-in edit and its score"
