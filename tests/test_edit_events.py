"""Live events of an edit over SSE, read with a real SSE client (httpx-sse)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from httpx_sse import ServerSentEvent, connect_sse

from tests.conftest import decode, fixture_bytes

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")
SSE = {"Accept": "text/event-stream"}


def _files() -> list:
    return [("image", ("coffee.png", COFFEE)), ("mask", ("m.png", MASK))]


def _streamed_edit(client: httpx.Client, **fields: str) -> tuple[httpx.Response, list[ServerSentEvent]]:
    data = {"prompt": "replace the table with sand", "provider": "openai-images", **fields}
    with connect_sse(client, "POST", "/v1/edits", files=_files(), data=data, headers=SSE) as source:
        return source.response, list(source.iter_sse())


@pytest.fixture(scope="module")
def events_server(make_server: Callable[..., str], emulator: str) -> str:
    """A cloud gateway that forgets finished edits' events at once and sends keep-alives often."""
    return make_server(openai_api_key="sk-test", openai_base_url=f"{emulator}/v1", gemini_api_key="g-test",
                       gemini_base_url=emulator, events_retain_s=0, events_heartbeat_s=0.2)  # fmt: skip


@pytest.fixture()
def short(events_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=events_server, timeout=60) as c:
        yield c


def test_streamed_edit_events_in_order_with_decodable_partials(cloud: httpx.Client) -> None:
    response, events = _streamed_edit(cloud, partial_images="2", output_format="webp")
    assert response.headers["content-type"].startswith("text/event-stream")
    assert [e.event for e in events] == ["queued", "routed", "partial_image", "partial_image", "attempt", "completed"]
    assert [e.id for e in events] == [str(i) for i in range(1, 7)]
    routed, attempt, completed = events[1].json(), events[4].json(), events[5].json()
    assert routed["candidates"][0] == "openai-images" and routed["rule"]
    assert (attempt["provider"], attempt["outcome"], attempt["fallback"]) == ("openai-images", "ok", False)
    for index, event in enumerate(events[2:4]):
        partial = event.json()
        assert (partial["index"], partial["format"]) == (index, "webp")
        raw = base64.b64decode(partial["b64_json"])
        assert raw[:4] == b"RIFF" and decode(raw).shape[:2] == (partial["height"], partial["width"])
    assert completed["status"] == "succeeded" and completed["id"] == response.headers["x-editgate-edit-id"]
    stored = cloud.get(f"/v1/edits/{completed['id']}").json()
    assert stored["cost"] == completed["cost"] and stored["images"][0]["sha256"] == completed["images"][0]["sha256"]


def test_resume_with_last_event_id_and_late_subscriber(cloud: httpx.Client) -> None:
    _, events = _streamed_edit(cloud, partial_images="1")
    edit_id = events[-1].json()["id"]
    url = f"/v1/edits/{edit_id}/events"
    with connect_sse(cloud, "GET", url, headers={"Last-Event-ID": "3"}) as source:
        resumed = list(source.iter_sse())
    assert [(e.id, e.event) for e in resumed] == [(e.id, e.event) for e in events[3:]]
    with connect_sse(cloud, "GET", url) as source:  # a late subscriber gets the whole history, terminal included
        late = list(source.iter_sse())
    assert [e.event for e in late] == [e.event for e in events]
    preview = late[2].json()  # a finished edit's previews keep their place, not their bytes (bounded memory)
    assert preview["superseded"] and "b64_json" not in preview and preview["index"] == 0


def test_terminal_event_replays_from_storage_after_the_buffer_is_gone(short: httpx.Client) -> None:
    _, first = _streamed_edit(short)
    _, second = _streamed_edit(short, provider="no-such-provider")  # publishing it drops the first's buffer
    for events, terminal in ((first, "completed"), (second, "failed")):
        assert events[-1].event == terminal
        edit_id = events[-1].json().get("id") or events[-1].json().get("edit_id")
        with connect_sse(short, "GET", f"/v1/edits/{edit_id}/events") as source:
            late = list(source.iter_sse())
        assert [(e.event, e.id) for e in late] == [(terminal, "final")]
        stored = short.get(f"/v1/edits/{edit_id}").json()
        assert late[0].json() == (stored if terminal == "completed" else stored["error"])


def test_keep_alive_comments_while_the_provider_renders(short: httpx.Client, faults: Callable[..., None],
                                                        emulator: str) -> None:  # fmt: skip
    httpx.put(f"{emulator}/_emulator/config", json={"endpoints": {"images": {"latency_ms": 900}}}).raise_for_status()
    data = {"prompt": "replace the table with sand", "provider": "openai-images"}
    lines = []
    with short.stream("POST", "/v1/edits", files=_files(), data=data, headers=SSE) as r:
        for line in r.iter_lines():
            lines.append(line)
    assert ": keep-alive" in lines
    assert lines.index(": keep-alive") < lines.index("event: completed")


def test_a_disconnected_stream_does_not_cancel_the_edit(cloud: httpx.Client, emulator: str,
                                                        faults: Callable[..., None]) -> None:  # fmt: skip
    httpx.put(f"{emulator}/_emulator/config", json={"endpoints": {"images": {"latency_ms": 1500}}}).raise_for_status()
    data = {"prompt": "replace the table with sand", "provider": "openai-images"}
    with connect_sse(cloud, "POST", "/v1/edits", files=_files(), data=data, headers=SSE) as source:
        first = next(source.iter_sse())
    assert first.event == "queued"  # the client went away here, while the provider renders
    edit_id = source.response.headers["x-editgate-edit-id"]
    status = None
    for _ in range(200):
        status = cloud.get(f"/v1/edits/{edit_id}").json()["status"]
        if status != "running":
            break
        time.sleep(0.1)
    assert status == "succeeded"


def test_refusals_before_the_stream_are_plain_errors(cloud: httpx.Client) -> None:
    r = cloud.post("/v1/edits", files=_files(), data={"prompt": "x", "partial_images": "4"}, headers=SSE)
    assert r.status_code == 422 and r.json()["error"]["param"] == "partial_images"
    assert cloud.get("/v1/edits/ed_nope/events").status_code == 404
    _, events = _streamed_edit(cloud)
    bad = cloud.get(f"/v1/edits/{events[-1].json()['id']}/events", headers={"Last-Event-ID": "x"})
    assert bad.status_code == 422 and json.loads(bad.text)["error"]["param"] == "Last-Event-ID"


def test_idempotent_streamed_replay_answers_the_terminal_event(cloud: httpx.Client) -> None:
    headers = {**SSE, "Idempotency-Key": f"stream-{time.time_ns()}"}
    data = {"prompt": "replace the table with sand", "provider": "openai-images"}
    with connect_sse(cloud, "POST", "/v1/edits", files=_files(), data=data, headers=headers) as source:
        first = list(source.iter_sse())
    with connect_sse(cloud, "POST", "/v1/edits", files=_files(), data=data, headers=headers) as source:
        again = list(source.iter_sse())
    assert again[-1].event == "completed" and again[-1].json()["id"] == first[-1].json()["id"]


def test_the_bus_keeps_few_finished_edits_and_every_running_one() -> None:
    from router.events import EventBus

    bus = EventBus(retain_s=3600, max_edits=3)
    bus.publish("running", "queued", {"position": 0})
    for i in range(10):
        bus.publish(f"done-{i}", "queued", {"position": 0})
        bus.publish(f"done-{i}", "completed", {})
    assert bus.knows("running") and bus.knows("done-9") and not bus.knows("done-0")
    assert len(bus._edits) <= 3
    assert bus.publish("done-9", "partial_image", {}).type == "completed"  # nothing follows a terminal event


def test_a_lagging_live_subscriber_still_gets_the_preview_bytes() -> None:
    import asyncio

    from router.events import EventBus

    async def scenario() -> tuple[list, list]:
        bus = EventBus()
        bus.publish("e", "queued", {"position": 0})
        live = bus.subscribe("e")
        first = [await anext(live)]
        bus.publish("e", "partial_image", {"index": 0, "b64_json": "AAAA"})
        bus.publish("e", "completed", {})  # before the subscriber read the preview
        late = [e async for e in bus.subscribe("e")]
        return first + [e async for e in live], late

    live, late = asyncio.run(scenario())
    assert [e.type for e in live] == ["queued", "partial_image", "completed"] and live[1].data["b64_json"] == "AAAA"
    assert "b64_json" not in late[1].data and late[1].data["superseded"]
