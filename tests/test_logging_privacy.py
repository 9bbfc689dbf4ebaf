"""Prompts and image bytes never reach the logs; every line carries the request id."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from tests.conftest import fixture_bytes


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture()
def collected() -> _Collect:
    handler = _Collect()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old)


def test_prompt_is_not_logged_and_request_id_is_on_every_line(client: httpx.Client, collected: _Collect) -> None:
    secret = "remove the helmet of agent SECRET-7731"
    r = client.post(
        "/v1/edits",
        files=[
            ("image", ("a.png", fixture_bytes("astronaut.png"))),
            ("mask", ("m.png", fixture_bytes("astronaut_helmet_mask.png"))),
        ],
        data={"prompt": secret},
        headers={"X-Request-ID": "trace-me-1"},
    )
    assert r.status_code == 200

    def access_logged() -> bool:
        return any(
            isinstance(rec.msg, dict)
            and rec.msg.get("event") == "request"
            and rec.msg.get("request_id") == "trace-me-1"
            for rec in list(collected.records)
        )

    deadline = time.monotonic() + 5  # the access line is written after the response has been sent
    while not access_logged() and time.monotonic() < deadline:
        time.sleep(0.01)
    request_events = {"request", "edit_routed", "edit_succeeded"}  # other live servers' sweepers log too
    ours = [
        rec for rec in collected.records if rec.name.startswith("editgate") and rec.msg.get("event") in request_events
    ]
    ours = [rec for rec in ours if rec.msg.get("path", "/v1/edits") == "/v1/edits"]
    assert {"request", "edit_routed", "edit_succeeded"} <= {rec.msg.get("event") for rec in ours}
    for rec in collected.records:
        text = str(rec.msg) + str(rec.args)
        assert "SECRET-7731" not in text
        assert "PNG" not in text
    for rec in ours:
        assert rec.msg.get("request_id") == "trace-me-1", rec.msg
