"""``editgate edit`` on the async API with live events, ``--async`` and ``editgate wait``, against a live
cloud gateway whose openai-images is the streaming emulator."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from router import cli_progress
from router.cli import main
from tests.conftest import decode, fixture_bytes

EDIT_ARGS = ["--prompt", "replace the table with sand", "--provider", "openai-images"]


@pytest.fixture()
def slow_images(emulator: str) -> Iterator[None]:
    """openai-images answers after a pause and spaces its previews, so a follower is there before it ends."""
    plan = {"latency_ms": 800, "partial_interval_ms": 200}
    httpx.put(f"{emulator}/_emulator/config", json={"endpoints": {"images": plan}}).raise_for_status()
    yield
    httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()


def _edit(server: str, fixtures_dir: Path, *args: str) -> Result:
    image, mask = fixtures_dir / "coffee.png", fixtures_dir / "coffee_background_mask.png"
    return CliRunner().invoke(main, ["edit", str(image), "--mask", str(mask), *EDIT_ARGS, "--server", server, *args])


def _summary(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, "one final line on stdout"
    return json.loads(lines[0])  # type: ignore[no-any-return]


def test_edit_follows_events_saves_partials_and_the_result(
    cloud_server: str, fixtures_dir: Path, tmp_path: Path, slow_images: None
) -> None:
    out, partials = tmp_path / "out.webp", tmp_path / "previews"
    summary = _summary(_edit(cloud_server, fixtures_dir, "--format", "webp", "--out", str(out),
                             "--partials", str(partials)))  # fmt: skip
    assert summary["provider"] == "openai-images" and summary["id"].startswith("ver_")
    assert decode(out.read_bytes()).ndim == 3
    saved = sorted(p.name for p in partials.iterdir())
    assert saved == ["partial-0.webp", "partial-1.webp"]
    assert all(decode((partials / name).read_bytes()).ndim == 3 for name in saved)


def test_async_prints_the_id_and_wait_finishes_it(cloud_server: str, fixtures_dir: Path, tmp_path: Path) -> None:
    queued = _summary(_edit(cloud_server, fixtures_dir, "--async"))
    assert queued["location"] == f"{cloud_server}/v1/edits/{queued['id']}" and queued["status"] == "queued"
    out = tmp_path / "waited.png"
    waited = _summary(CliRunner().invoke(main, ["wait", queued["id"], "--out", str(out), "--server", cloud_server]))
    assert waited["id"] == queued["id"] and waited["out"] == str(out)
    assert decode(out.read_bytes()).ndim == 3


def test_failed_edit_exits_1_with_its_id(cloud: httpx.Client, cloud_server: str, fixtures_dir: Path,
                                         faults: Callable[..., None]) -> None:  # fmt: skip
    faults("images", server_error=1.0)
    result = _edit(cloud_server, fixtures_dir)
    assert result.exit_code == 1
    edit_id = result.output.split("edit ", 1)[1].split()[0]
    assert cloud.get(f"/v1/edits/{edit_id}").json()["status"] == "failed"
    assert "failed: provider_unavailable: openai-images" in result.output


def test_ctrl_c_leaves_the_edit_running_and_wait_resumes_it(
    cloud: httpx.Client, cloud_server: str, fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: cli_progress.Progress, event: Any) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(cli_progress.Progress, "update", interrupted)
        stopped = _edit(cloud_server, fixtures_dir)
    assert stopped.exit_code == 130
    assert "NOT canceled" in stopped.stderr and "editgate wait ver_" in stopped.stderr
    edit_id = stopped.stderr.split("editgate wait ", 1)[1].split()[0]
    out = tmp_path / "resumed.png"
    waited = _summary(CliRunner().invoke(main, ["wait", edit_id, "--out", str(out), "--server", cloud_server]))
    assert waited["id"] == edit_id and decode(out.read_bytes()).ndim == 3
    assert cloud.get(f"/v1/edits/{edit_id}").json()["status"] == "succeeded"


def test_progress_line_on_a_terminal(cloud_server: str, fixtures_dir: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch, slow_images: None) -> None:  # fmt: skip
    monkeypatch.setattr(cli_progress, "stderr_is_terminal", lambda: True)
    result = _edit(cloud_server, fixtures_dir, "--out", str(tmp_path / "o.png"), "--partial-images", "1")
    _summary(result)
    shown = result.stderr
    for phase in ("queued", "routed by rule", "partial 1", "attempt ok", "done"):
        assert phase in shown, phase
    assert "via openai-images" in shown and "\r" in shown


class _CutOnce(httpx.HTTPTransport):
    """The first event stream breaks after two events, as a dropped connection does."""

    def __init__(self) -> None:
        super().__init__()
        self.last_event_ids: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path.endswith("/events"):
            self.last_event_ids.append(request.headers.get("last-event-id", ""))
            if len(self.last_event_ids) == 1:
                response.stream = _Broken(response.stream)  # type: ignore[arg-type]
        return response


class _Broken(httpx.SyncByteStream):
    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def __iter__(self) -> Iterator[bytes]:
        buffered = b""
        for chunk in self.stream:
            buffered += chunk
            if buffered.count(b"\n\n") >= 2:
                yield buffered[: _nth(buffered, b"\n\n", 2) + 2]
                raise httpx.RemoteProtocolError("peer closed connection")

    def close(self) -> None:
        self.stream.close()


def _nth(data: bytes, sep: bytes, n: int) -> int:
    at = -1
    for _ in range(n):
        at = data.index(sep, at + 1)
    return at


def test_a_dropped_stream_resumes_after_the_last_event(cloud: httpx.Client, cloud_server: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    files = [("image", ("coffee.png", fixture_bytes("coffee.png")))]
    data = {"prompt": "sand", "provider": "openai-images", "partial_images": "1"}
    edit_id = cloud.post("/v1/edits", files=files, data=data, headers={"Prefer": "respond-async"}).json()["id"]
    monkeypatch.setattr(cli_progress, "RETRY_PAUSE_S", 0.05)
    transport = _CutOnce()
    with httpx.Client(base_url=cloud_server, transport=transport, timeout=60) as client:
        kind, record = cli_progress.follow(client, edit_id, {}, timeout=60)
    assert (kind, record["id"]) == ("completed", edit_id)
    assert transport.last_event_ids == ["", "2"]
