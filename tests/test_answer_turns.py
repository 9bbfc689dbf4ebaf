"""Provider answers are read, decoded and stored a bounded number at a time (``EDITGATE_ANSWERS_AT_ONCE``):
an answer waits unread for its turn, the turn is given back once the result is stored or the edit fails, and
edits beyond the bound still all succeed. Real HTTP against the emulator throughout."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers import openai_common
from providers.base import EditJob, ImageBlob
from providers.errors import Unavailable
from providers.openai_images import OpenAIImagesProvider
from router.app import create_app
from router.service import Gateway
from router.settings import Limits, Settings
from router.threaded import serve_in_thread
from tests.conftest import TEST_LIMITS, cloud_settings, fixture_bytes

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")


def _job(turn: Callable[[], object] | None) -> EditJob:
    source = ImageBlob(COFFEE, "image/png", 600, 400)
    return EditJob(prompt="a sandy beach", model="gpt-image-2", source=source, out_w=600, out_h=400,
                   timeout_s=20.0, answer_turn=turn)  # type: ignore[arg-type]  # fmt: skip


def test_the_adapter_reads_the_answer_only_once_it_has_its_turn(emulator: str) -> None:
    provider = OpenAIImagesProvider(openai_common.make_client("sk-test", f"{emulator}/v1"))

    async def scenario() -> None:
        asked, allowed = asyncio.Event(), asyncio.Event()

        async def turn() -> None:
            asked.set()
            await allowed.wait()

        call = asyncio.create_task(provider.edit(_job(turn)))
        await asked.wait()  # the answer's headers are in: the adapter now waits for its turn
        await asyncio.sleep(0.2)
        assert not call.done()
        allowed.set()
        result = await call
        assert result.images and result.images[0].data.startswith(b"\x89PNG")

    asyncio.run(scenario())


def test_an_error_answer_needs_no_turn(emulator: str, faults: Callable[..., None]) -> None:
    """The SDK reads an error's small body itself and raises its mapped error: no turn is taken for it."""
    provider = OpenAIImagesProvider(openai_common.make_client("sk-test", f"{emulator}/v1"))
    faults("images", server_error=1.0)
    asked: list[int] = []

    async def turn() -> None:
        asked.append(1)

    with pytest.raises(Unavailable):
        asyncio.run(provider.edit(_job(turn)))
    assert asked == []


def test_a_body_cut_off_after_its_turn_is_a_connection_failure(emulator: str, faults: Callable[..., None]) -> None:
    """200 headers, then the connection drops mid-body: the same error family the SDK gave when it read the body."""
    provider = OpenAIImagesProvider(openai_common.make_client("sk-test", f"{emulator}/v1"))
    faults("images", drop=1.0)
    asked: list[int] = []

    async def turn() -> None:
        asked.append(1)

    with pytest.raises(Unavailable) as err:
        asyncio.run(provider.edit(_job(turn)))
    assert asked == [1] and err.value.provider == "openai-images"


@pytest.fixture()
def one_at_a_time(emulator: str, tmp_path: Path) -> Iterator[tuple[str, Gateway]]:
    """A gateway that reads one provider answer at a time."""
    settings = Settings(data_dir=tmp_path, limits=Limits(**TEST_LIMITS), answers_at_once=1, **cloud_settings(emulator))
    app = create_app(settings)
    with serve_in_thread(app) as url:
        yield url, app.state.gateway


def _edit(client: httpx.Client, url: str) -> httpx.Response:
    files = [("image", ("c.png", COFFEE, "image/png")), ("mask", ("m.png", MASK, "image/png"))]
    data = {"prompt": "a sandy beach", "provider": "openai-images", "preservation": "false"}
    return client.post(f"{url}/v1/edits", files=files, data=data)


@pytest.fixture()
def slow_provider(emulator: str) -> Iterator[None]:
    """The emulator answers each call after 300 ms, so concurrent calls' answers arrive at about the same time."""
    plan = {"endpoints": {"images": {"latency_ms": 300}}}
    httpx.put(f"{emulator}/_emulator/config", json=plan).raise_for_status()
    yield
    httpx.put(f"{emulator}/_emulator/config", json={}).raise_for_status()


def test_edits_beyond_the_bound_all_succeed_one_answer_read_at_a_time(
    one_at_a_time: tuple[str, Gateway], slow_provider: None
) -> None:
    url, gateway = one_at_a_time
    with httpx.Client(timeout=60) as client:

        async def together() -> list[httpx.Response]:
            loop = asyncio.get_running_loop()
            return list(await asyncio.gather(*(loop.run_in_executor(None, _edit, client, url) for _ in range(4))))

        answers = asyncio.run(together())
    assert [r.status_code for r in answers] == [200] * 4, [r.text for r in answers]
    assert gateway.answers.peak == 1
    assert gateway.answers.held == 0


def test_a_retry_after_a_cut_off_answer_reuses_the_edits_turn(
    one_at_a_time: tuple[str, Gateway], faults: Callable[..., None]
) -> None:
    """The first answer breaks off mid-body, the retry's answer is read with the same turn (with one turn in all,
    taking a second would wait for good)."""
    url, gateway = one_at_a_time
    faults("images", drop=1.0, max_faults=1)
    with httpx.Client(timeout=30) as client:
        retried = _edit(client, url)
    assert retried.status_code == 200, retried.text
    assert [a["outcome"] for a in retried.json()["route"]["attempts"]] == ["provider_unavailable", "ok"]
    assert gateway.answers.held == 0


def test_a_failed_edit_gives_its_turn_back(one_at_a_time: tuple[str, Gateway], faults: Callable[..., None]) -> None:
    url, gateway = one_at_a_time
    faults("images", drop=1.0, max_faults=2)  # the call and its retry both break off
    with httpx.Client(timeout=30) as client:
        failed = _edit(client, url)
        assert failed.status_code == 502, failed.text
        assert gateway.answers.held == 0
        assert _edit(client, url).status_code == 200  # with the turn kept, this one would wait for good
    assert gateway.answers.held == 0


def test_an_accepted_edit_holds_no_copy_of_its_stored_source_while_it_waits(
    emulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the source is in the blob store, the edit keeps only its path: with a thousand edits waiting on the
    accept transaction (SQLite takes one writer at a time) or on the provider, a copy each would be gigabytes."""

    made: list[ImageBlob] = []
    real_init = ImageBlob.__init__

    def tracked(self: ImageBlob, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(ImageBlob, "__init__", tracked)
    settings = Settings(data_dir=tmp_path, limits=Limits(**TEST_LIMITS), **cloud_settings(emulator))
    app = create_app(settings)
    held_at_accept: list[int] = []
    lifecycle = app.state.gateway.lifecycle
    real_accept = lifecycle.accept

    async def accept(*args: Any, **kwargs: Any) -> Any:
        held_at_accept.append(sum(b.nbytes for b in made if b.nbytes > 100_000 and b._data is not None))
        return await real_accept(*args, **kwargs)

    monkeypatch.setattr(lifecycle, "accept", accept)
    with serve_in_thread(app) as url, httpx.Client(timeout=60) as client:
        assert _edit(client, url).status_code == 200
    assert any(b.nbytes > 100_000 for b in made)  # the source was made as a blob
    assert held_at_accept == [0], f"bytes still in memory when the accept transaction began: {held_at_accept}"


def test_a_source_stored_long_before_its_accept_commits_is_not_collected(
    emulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source is stored (and released from memory) before the accept transaction, which may wait minutes
    for SQLite's writer in a burst. Until that commit nothing references the file: garbage collection must
    leave a file that young alone, or the edit would call its provider with a file that is gone."""
    import os

    from router.sessions import collect_garbage

    settings = Settings(data_dir=tmp_path, limits=Limits(**TEST_LIMITS), **cloud_settings(emulator))
    app = create_app(settings)
    gw = app.state.gateway
    real_accept = gw.lifecycle.accept
    collected: list[int] = []

    async def accept_after_a_long_wait(*args: Any, **kwargs: Any) -> Any:
        uses = args[4]  # (sha, kind, size) of the files stored for this edit
        for sha, _, _ in uses:
            path = gw.blobs.path(sha)
            os.utime(path, (path.stat().st_atime - 300, path.stat().st_mtime - 300))  # waited 5 min for the writer
        collected.append(await collect_garbage(gw))
        return await real_accept(*args, **kwargs)

    monkeypatch.setattr(gw.lifecycle, "accept", accept_after_a_long_wait)
    with serve_in_thread(app) as url, httpx.Client(timeout=60) as client:
        r = _edit(client, url)
    assert collected == [0], "garbage collection removed the files of an edit being accepted"
    assert r.status_code == 200, r.text
