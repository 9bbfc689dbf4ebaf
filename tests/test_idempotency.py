"""``Idempotency-Key`` on every endpoint that can spend money: 20 concurrent identical requests with one
key make one provider call and one ledger row per candidate called; the rest get the stored answer
(``Idempotent-Replayed: true``, the same bytes) or a 409 while it runs; another body with the key is a 409.
Drop-in failures carry the edit's id; drop-in answers from the emulator say so."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from sqlalchemy import func, select

from tests.conftest import CLOUD_DB_URL, fixture_bytes

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")
PROMPT = "a sandy beach"
CONCURRENT = 20


@pytest.fixture()
def slow_emulator(emulator: str) -> Iterator[Callable[[], int]]:
    """Each provider call takes a moment, so the concurrent requests overlap; yields the call counter."""
    plan = {"latency_ms": 300}
    config = {"endpoints": {"images": plan, "responses": plan, "gemini": plan}}
    httpx.put(f"{emulator}/_emulator/config", json=config).raise_for_status()  # also zeroes the counters
    yield lambda: sum(httpx.get(f"{emulator}/_emulator/stats").json()["requests"].values())
    httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()


@pytest.fixture()
def ledger_rows(cloud_server: str) -> Callable[[], int]:
    """How many attempts the `cloud` server's ledger holds (all tenants, all sessions)."""
    from router.storage.db import make_engine
    from router.storage.models import Attempt

    async def count() -> int:
        engine = make_engine(CLOUD_DB_URL[cloud_server])
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(select(func.count()).select_from(Attempt))).scalar_one())
        finally:
            await engine.dispose()

    return lambda: asyncio.run(count())


def _key() -> dict[str, str]:
    return {"Idempotency-Key": f"test-{uuid.uuid4()}"}


def _at_once(send: Callable[[], httpx.Response]) -> list[httpx.Response]:
    with ThreadPoolExecutor(CONCURRENT) as pool:
        return list(pool.map(lambda _: send(), range(CONCURRENT)))


def _one_ran(responses: list[httpx.Response], openai_shape: bool = False) -> httpx.Response:
    """Exactly one answer was computed; every other one is its replay (same bytes) or a 409 in progress."""
    ok = [r for r in responses if r.status_code == 200]
    first = [r for r in ok if "idempotent-replayed" not in r.headers]
    assert len(first) == 1, [(r.status_code, r.text[:200]) for r in responses]
    for r in ok:
        assert r.content == first[0].content
    for r in responses:
        if r.status_code != 200:
            assert r.status_code == 409, r.text[:300]
            error = r.json()["error"]
            assert error["code"] == "idempotency_in_progress" and r.headers["retry-after"] == "1"
            assert ("type" in error) is openai_shape
    return first[0]


def _spent_once(
    send: Callable[[dict[str, str]], httpx.Response], calls: Callable[[], int], ledger: Callable[[], int],
    per_request: int = 1, openai_shape: bool = False,
) -> tuple[httpx.Response, dict[str, str]]:  # fmt: skip
    headers = _key()
    rows_before = ledger()
    first = _one_ran(_at_once(lambda: send(headers)), openai_shape)
    assert calls() == per_request
    assert ledger() - rows_before == per_request
    replay = send(headers)
    assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
    assert replay.content == first.content
    assert calls() == per_request
    return first, headers


def _edit_form(prompt: str = PROMPT, **extra: str) -> dict[str, Any]:
    files = [("image", ("coffee.png", COFFEE)), ("mask", ("m.png", MASK))]
    return {"files": files, "data": {"prompt": prompt, "provider": "gemini", **extra}}


def _reused(r: httpx.Response, openai_shape: bool = False) -> None:
    assert r.status_code == 409, r.text[:300]
    error = r.json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert ("type" in error) is openai_shape


def test_native_edit(cloud: httpx.Client, slow_emulator: Callable[[], int], ledger_rows: Callable[[], int]) -> None:
    def send(headers: dict[str, str], prompt: str = PROMPT) -> httpx.Response:
        with httpx.Client(base_url=str(cloud.base_url), timeout=60) as c:
            return c.post("/v1/edits", headers=headers, **_edit_form(prompt))

    first, headers = _spent_once(send, slow_emulator, ledger_rows)
    assert first.json()["emulated"] is True and first.headers["x-editgate-emulated"] == "true"
    _reused(send(headers, "a snowy street"))


def test_session_edit(cloud: httpx.Client, slow_emulator: Callable[[], int], ledger_rows: Callable[[], int]) -> None:
    session = cloud.post("/v1/sessions", files={"image": ("coffee.png", COFFEE)}).json()["id"]

    def send(headers: dict[str, str], prompt: str = PROMPT) -> httpx.Response:
        with httpx.Client(base_url=str(cloud.base_url), timeout=60) as c:
            return c.post(f"/v1/sessions/{session}/edits", headers=headers,
                          data={"prompt": prompt, "provider": "gemini"})  # fmt: skip

    _, headers = _spent_once(send, slow_emulator, ledger_rows)
    _reused(send(headers, "a snowy street"))


def test_compare(cloud: httpx.Client, slow_emulator: Callable[[], int], ledger_rows: Callable[[], int]) -> None:
    def send(headers: dict[str, str], providers: str = "gemini,openai-images") -> httpx.Response:
        with httpx.Client(base_url=str(cloud.base_url), timeout=60) as c:
            form = _edit_form()
            del form["data"]["provider"]
            return c.post("/v1/compare", params={"providers": providers}, headers=headers, **form)

    first, headers = _spent_once(send, slow_emulator, ledger_rows, per_request=2)
    assert [r["status"] for r in first.json()["results"]] == ["succeeded", "succeeded"]
    _reused(send(headers, "gemini"))


def test_retry_of_a_failed_version(
    cloud: httpx.Client, slow_emulator: Callable[[], int], ledger_rows: Callable[[], int], emulator: str
) -> None:
    plan = {"faults": {"server_error": 1.0}}
    httpx.put(f"{emulator}/_emulator/config", json={"endpoints": {"gemini": plan}}).raise_for_status()
    failed = cloud.post("/v1/edits", **_edit_form())
    assert failed.status_code == 502, failed.text
    error = failed.json()["error"]
    assert failed.headers["x-editgate-edit-id"] == error["edit_id"]
    plan = {"latency_ms": 300}
    httpx.put(f"{emulator}/_emulator/config", json={"endpoints": {"gemini": plan}}).raise_for_status()
    path = f"/v1/sessions/{error['session_id']}/versions/{error['version']}/retry"

    def send(headers: dict[str, str], target: str = path) -> httpx.Response:
        with httpx.Client(base_url=str(cloud.base_url), timeout=60) as c:
            return c.post(target, headers=headers)

    _, headers = _spent_once(send, slow_emulator, ledger_rows)
    _reused(send(headers, f"/v1/sessions/{error['session_id']}/versions/0/retry"))


@pytest.fixture()
def raw_sdk(cloud_server: str) -> Iterator[OpenAI]:
    client = OpenAI(base_url=f"{cloud_server}/v1", api_key="dev", max_retries=0)
    yield client
    client.close()


def _sdk_send(call: Callable[..., Any]) -> Callable[..., httpx.Response]:
    """The SDK's raw HTTP response, whatever the status (a 409 raises; its response is kept)."""

    def send(headers: dict[str, str], **kwargs: Any) -> httpx.Response:
        try:
            return call(extra_headers=headers, **kwargs).http_response
        except openai.APIStatusError as err:
            return err.response

    return send


@pytest.mark.parametrize("response_format", ["b64_json", "url"])
def test_drop_in_edit(
    raw_sdk: OpenAI, slow_emulator: Callable[[], int], ledger_rows: Callable[[], int], response_format: str
) -> None:
    def edit(prompt: str = PROMPT, **kwargs: Any) -> Any:
        return raw_sdk.images.with_raw_response.edit(
            model="gpt-image-2", image=("coffee.png", COFFEE), mask=("m.png", MASK), prompt=prompt,
            response_format=response_format, **kwargs,
        )  # fmt: skip

    send = _sdk_send(edit)
    first, headers = _spent_once(send, slow_emulator, ledger_rows, openai_shape=True)
    assert first.json()["data"][0][response_format]
    assert first.headers["x-editgate-emulated"] == "true"
    assert first.headers["x-editgate-provider"] == "openai-images"
    _reused(send(headers, prompt="a snowy street"), openai_shape=True)
    with pytest.raises(openai.ConflictError):
        edit(prompt="a snowy street", extra_headers=headers)


def test_drop_in_generation(raw_sdk: OpenAI, slow_emulator: Callable[[], int], ledger_rows: Callable[[], int]) -> None:
    def generate(prompt: str = "a lighthouse at dusk", **kwargs: Any) -> Any:
        return raw_sdk.images.with_raw_response.generate(model="gpt-image-2", prompt=prompt, size="1024x1024",
                                                         **kwargs)  # fmt: skip

    send = _sdk_send(generate)
    first, headers = _spent_once(send, slow_emulator, ledger_rows, openai_shape=True)
    assert first.json()["data"][0]["b64_json"] and first.headers["x-editgate-emulated"] == "true"
    _reused(send(headers, prompt="a lighthouse at dawn"), openai_shape=True)


def test_drop_in_failure_names_its_edit(raw_sdk: OpenAI, cloud: httpx.Client, faults: Callable[..., None]) -> None:
    faults("images", server_error=1.0)
    headers = _key()
    with pytest.raises(openai.APIStatusError) as caught:
        raw_sdk.images.edit(model="gpt-image-2", image=("coffee.png", COFFEE), prompt=PROMPT, extra_headers=headers)
    response = caught.value.response
    error = response.json()["error"]
    assert error["type"] == "server_error" and error["edit_id"]
    assert response.headers["x-editgate-edit-id"] == error["edit_id"]
    stored = cloud.get(f"/v1/edits/{error['edit_id']}").json()
    assert stored["status"] == "failed" and stored["inputs"]["source"]["sha256"]
    faults("images")
    retried = raw_sdk.images.with_raw_response.edit(
        model="gpt-image-2", image=("coffee.png", COFFEE), prompt=PROMPT, extra_headers=headers
    )
    assert "idempotent-replayed" not in retried.headers, "a failed edit frees its key"


def test_unexpected_failure_after_the_version_exists_names_its_edit(
    raw_sdk: OpenAI, cloud: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the gateway")

    monkeypatch.setattr("router.service.normalize", broken)
    native = cloud.post("/v1/edits", **_edit_form())
    assert native.status_code == 500 and native.json()["error"]["code"] == "internal_error"
    assert native.headers["x-editgate-edit-id"] == native.json()["error"]["edit_id"]
    with pytest.raises(openai.InternalServerError) as caught:
        raw_sdk.images.edit(model="gpt-image-2", image=("coffee.png", COFFEE), prompt=PROMPT)
    error = caught.value.response.json()["error"]
    assert cloud.get(f"/v1/edits/{error['edit_id']}").json()["status"] == "failed"


def test_a_key_stored_by_0_1_0_still_replays() -> None:
    from router.idempotency import Answer

    stored = {"id": "ver_1", "provider": "gemini", "route": {"rule": "standard-tier"}, "cost": {"actual_usd": 0.04}}
    answer = Answer.from_stored(stored)
    assert answer.body == stored
    assert answer.headers["x-editgate-edit-id"] == "ver_1" and answer.headers["x-editgate-provider"] == "gemini"
    assert Answer.from_stored(Answer(stored, {"x": "y"}, "ver_1").stored()).headers == {"x": "y"}
