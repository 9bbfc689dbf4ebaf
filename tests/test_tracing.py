"""OpenTelemetry: the caller's traceparent is honoured, every stage is a span exported over OTLP/HTTP to a real
receiver, the trace reaches the provider (the emulator sees the same trace id), and nothing is exported or
propagated when neither a collector nor the caller asks for it."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import fixture_bytes
from tests.test_serve_command import _free_port, wait_until_serving

FILES = {
    "image": ("c.png", fixture_bytes("coffee.png")),
    "mask": ("m.png", fixture_bytes("coffee_background_mask.png")),
}
PROMPT = "a violet teapot nobody else would ask for"


class _Collector(BaseHTTPRequestHandler):
    spans: list = []

    def do_POST(self) -> None:  # OTLP/HTTP protobuf: POST /v1/traces
        body = self.rfile.read(int(self.headers["content-length"]))
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                _Collector.spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def collector() -> Iterator[str]:
    _Collector.spans = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_traced_edit_is_exported_stage_by_stage_and_reaches_the_provider(collector: str, tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "GEMINI_API_KEY")}
    env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": collector, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    cmd = [sys.executable, "-m", "router.cli", "serve", "--port", str(port), "--data-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url, trace_id, parent = f"http://127.0.0.1:{port}", secrets.token_hex(16), secrets.token_hex(8)
    try:
        wait_until_serving(url, proc)
        r = httpx.post(f"{url}/v1/edits", files=FILES, data={"prompt": PROMPT, "provider": "openai-images"},
                       headers={"traceparent": f"00-{trace_id}-{parent}-01"}, timeout=120)  # fmt: skip
        assert r.status_code == 200, r.text
        wanted = {"editgate.intake", "editgate.decide", "editgate.provider_attempt", "editgate.normalize",
                  "editgate.store", "POST /v1/edits"}  # fmt: skip
        deadline = time.monotonic() + 30
        while not wanted <= {s.name for s in _Collector.spans if s.trace_id.hex() == trace_id}:
            assert time.monotonic() < deadline, f"spans seen: {sorted({s.name for s in _Collector.spans})}"
            time.sleep(0.1)
        ours = [s for s in _Collector.spans if s.trace_id.hex() == trace_id]
        server_span = next(s for s in ours if s.name == "POST /v1/edits")
        assert server_span.parent_span_id.hex() == parent  # continues the caller's span
        attempt = next(s for s in ours if s.name == "editgate.provider_attempt")
        attrs = {a.key: a.value.string_value for a in attempt.attributes}
        assert attrs["editgate.provider"] == "openai-images" and attrs["editgate.outcome"] == "ok"
        assert PROMPT not in str(ours)  # spans never carry the prompt
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_the_trace_reaches_the_provider_and_nothing_is_propagated_without_one(cloud: httpx.Client,
                                                                              emulator: str) -> None:  # fmt: skip
    trace_id = secrets.token_hex(16)
    before = httpx.get(f"{emulator}/_emulator/stats").json()["traceparents"]
    r = cloud.post("/v1/edits", files=FILES, data={"prompt": "a red mug", "provider": "openai-images"})
    assert r.status_code == 200, r.text
    assert httpx.get(f"{emulator}/_emulator/stats").json()["traceparents"] == before  # no trace: no header
    r = cloud.post("/v1/edits", files=FILES, data={"prompt": "a red mug", "provider": "gemini"},
                   headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"})  # fmt: skip
    assert r.status_code == 200, r.text
    received = httpx.get(f"{emulator}/_emulator/stats").json()["traceparents"]
    assert any(tp.split("-")[1] == trace_id for tp in received), received
