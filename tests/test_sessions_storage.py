"""Sessions, versions, chains, failures, idempotency and isolation: the same tests on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from router.cli import main
from router.storage.db import database_url, make_engine
from router.storage.store import Store
from tests.conftest import cloud_settings, decode, fixture_bytes

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")


@pytest.fixture(scope="module")
def stack(make_server: Callable[..., str], emulator: str, db_url: str | None,
          tmp_path_factory: pytest.TempPathFactory) -> dict:  # fmt: skip
    data_dir = tmp_path_factory.mktemp("sessions")
    url = make_server(data_dir=data_dir, database_url=db_url, **cloud_settings(emulator))
    return {"url": url, "data_dir": data_dir, "db_url": db_url}


@pytest.fixture()
def api(stack: dict) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack["url"], timeout=60) as c:
        yield c


def ledger(stack: dict, version_id: str) -> list:
    async def rows() -> list:
        store = Store(make_engine(database_url(stack["db_url"], stack["data_dir"])))
        try:
            return [(a.provider, a.outcome) for a in await store.attempts_for("dev", version_id)]
        finally:
            await store.engine.dispose()

    return asyncio.run(rows())


def new_session(api: httpx.Client) -> dict:
    r = api.post("/v1/sessions", files={"image": ("coffee.png", COFFEE)}, data={"metadata": '{"sku": "C-1"}'})
    assert r.status_code == 201, r.text
    return r.json()


def edit(api: httpx.Client, sid: str, prompt: str, mask: bool = False, **fields: str) -> httpx.Response:
    files = [("mask", ("m.png", MASK))] if mask else None
    return api.post(f"/v1/sessions/{sid}/edits", files=files, data={"prompt": prompt, **fields})


def test_five_rounds_with_a_branch(api: httpx.Client) -> None:
    session = new_session(api)
    sid = session["id"]
    assert session["versions"][0]["number"] == 0 and session["metadata"] == {"sku": "C-1"}
    chain = {"provider": "openai-responses"}
    v1 = edit(api, sid, "replace the table with sand", mask=True, **chain).json()
    v2 = edit(api, sid, "make the sand warmer", **chain).json()
    v3 = edit(api, sid, "add footprints", **chain).json()
    v4 = edit(api, sid, "add seashells instead", parent_version="2", **chain).json()
    v5 = edit(api, sid, "add a sunset glow", **chain).json()
    assert [v["version"] for v in (v1, v2, v3, v4, v5)] == [1, 2, 3, 4, 5]
    assert [v["parent_version"] for v in (v1, v2, v3, v4, v5)] == [0, 1, 2, 2, 4]
    assert v1["chain"] is None, "round one uploads the image"
    tree = api.get(f"/v1/sessions/{sid}").json()
    ids = {v["number"]: v["chain_response_id"] for v in tree["versions"]}
    assert all(ids[n] for n in range(1, 6)) and len(set(ids.values())) == 6
    for child, parent in ((v2, 1), (v3, 2), (v4, 2), (v5, 4)):
        assert child["chain"] == {"continued": True, "previous_response_id": ids[parent], "note": None}
    assert [(v["number"], v["parent"], v["status"]) for v in tree["versions"]] == [
        (0, None, "succeeded"), (1, 0, "succeeded"), (2, 1, "succeeded"), (3, 2, "succeeded"),
        (4, 2, "succeeded"), (5, 4, "succeeded"),
    ]  # fmt: skip
    assert tree["versions"][3]["prompt"] == "add footprints" and tree["versions"][1]["provider"] == "openai-responses"
    image = api.get(f"/v1/sessions/{sid}/versions/4/image")
    assert image.status_code == 200 and decode(image.content).shape[:2] == (400, 600)
    cmp = api.get(f"/v1/sessions/{sid}/compare", params={"a": 1, "b": 4}).json()
    heat = decode(api.get(cmp["heatmap"]["url"]).content)
    assert heat.shape == (400, 600, 3) and cmp["heatmap"]["width"] == 600
    assert cmp["drift"]["mean_abs_diff"] > 0
    same = api.get(f"/v1/sessions/{sid}/compare", params={"a": 3, "b": 3}).json()
    assert same["drift"] == {"mean_abs_diff": 0.0, "changed_share": 0.0}


def test_chain_moves_to_another_provider_by_stateless_replay(api: httpx.Client, faults: Callable[..., None]) -> None:
    sid = new_session(api)["id"]
    edit(api, sid, "replace the table with sand", mask=True, provider="openai-responses")
    faults("responses", unavailable=1.0)
    moved = edit(api, sid, "make the sand warmer").json()
    assert moved["route"]["rule"] == "session-chain"
    assert moved["provider"] == "openai-images" and moved["parent_version"] == 1
    assert moved["chain"]["continued"] is False and "replayed from version 1" in moved["chain"]["note"]
    assert [a["provider"] for a in moved["route"]["attempts"]] == ["openai-responses", "openai-images"]
    version = api.get(f"/v1/sessions/{sid}/versions/2").json()
    assert "chain moved" in version["chain_note"]


def test_provider_failure_keeps_a_failed_version_that_can_be_retried(api: httpx.Client, faults: Callable[..., None],
                                                                   stack: dict) -> None:  # fmt: skip
    sid = new_session(api)["id"]
    faults("gemini", unavailable=1.0)
    r = edit(api, sid, "replace the table with sand", mask=True, provider="gemini", protect="label")
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["code"] == "provider_unavailable" and err["version"] == 1
    failed = api.get(f"/v1/sessions/{sid}/versions/1").json()
    assert failed["status"] == "failed" and failed["error"]["code"] == "provider_unavailable"
    assert failed["settings"]["protect"] == ["label"] and failed["chips"] == ["label"]
    record = api.get(f"/v1/edits/{err['edit_id']}").json()
    for ref in (record["inputs"]["source"], record["inputs"]["mask"]):
        assert api.get(ref["url"]).status_code == 200
    # the only candidate is retried once with backoff before the edit fails: two ledger rows
    assert ledger(stack, err["edit_id"]) == [("gemini", "provider_unavailable")] * 2
    faults("gemini")  # healthy again
    retried = api.post(f"/v1/sessions/{sid}/versions/1/retry")
    assert retried.status_code == 200, retried.text
    body = retried.json()
    assert body["version"] == 2 and body["parent_version"] == 0 and body["provider"] == "gemini"
    assert body["preservation"]["mask_locked"] is True, "the stored mask was used again"
    assert api.get(f"/v1/sessions/{sid}/versions/2").json()["retry_of"] == 1
    assert api.post(f"/v1/sessions/{sid}/versions/2/retry").status_code == 409


def test_idempotency_key_replays_without_a_second_call(api: httpx.Client, stack: dict) -> None:
    files = [("image", ("c.png", COFFEE)), ("mask", ("m.png", MASK))]
    headers = {"Idempotency-Key": f"order-{time.time_ns()}"}
    first = api.post("/v1/edits", files=files, data={"prompt": "sand", "provider": "gemini"}, headers=headers)
    second = api.post("/v1/edits", files=files, data={"prompt": "sand", "provider": "gemini"}, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() and second.headers["idempotent-replayed"] == "true"
    assert ledger(stack, first.json()["id"]) == [("gemini", "ok")]
    other = api.post("/v1/edits", files=files, data={"prompt": "snow", "provider": "gemini"}, headers=headers)
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"


def test_delete_removes_rows_and_files(api: httpx.Client) -> None:
    sid = new_session(api)["id"]
    body = edit(api, sid, "replace the table with sand", mask=True, provider="gemini").json()
    unique_result = body["images"][0]["url"]
    assert api.delete(f"/v1/sessions/{sid}").status_code == 204
    assert api.get(f"/v1/sessions/{sid}").status_code == 404
    assert api.get(unique_result).status_code == 404
    assert api.get(f"/v1/edits/{body['id']}").status_code == 404
    assert api.delete(f"/v1/sessions/{sid}").status_code == 404


def test_retention_sweeper_expires_sessions(make_server: Callable[..., str], db_url: str | None) -> None:
    url = make_server(database_url=db_url, retention_days=-1, sweep_interval_s=0.05)
    with httpx.Client(base_url=url) as c:
        sid = c.post("/v1/sessions", files={"image": ("c.png", COFFEE)}).json()["id"]
        deadline = time.monotonic() + 15
        while c.get(f"/v1/sessions/{sid}").status_code != 404:
            assert time.monotonic() < deadline, "expired session was not swept"
            time.sleep(0.05)


def _key(data_dir: Path, db: str | None, tenant: str) -> str:
    args = ["keys", "create", "--tenant", tenant, "--data-dir", str(data_dir)] + (["--database-url", db] if db else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.output.split()[-1]


def test_tenant_isolation_on_every_endpoint(make_server: Callable[..., str], fresh_db: Callable[[], str | None],
                                           tmp_path_factory: pytest.TempPathFactory, backend: str) -> None:  # fmt: skip
    data_dir = tmp_path_factory.mktemp("tenants")
    db = fresh_db()  # a database of its own: creating keys turns auth on for everyone on it
    url = make_server(data_dir=data_dir, database_url=db)
    key_a, key_b = _key(data_dir, db, f"acme-{backend}"), _key(data_dir, db, f"globex-{backend}")
    a = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key_a}"}, timeout=60)
    b = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key_b}"}, timeout=60)
    assert httpx.get(f"{url}/v1/sessions/x").status_code == 401
    assert (
        httpx.get(f"{url}/v1/sessions/x", headers={"Authorization": "Bearer nope"}).json()["error"]["code"]
        == "invalid_api_key"
    )
    session = a.post("/v1/sessions", files={"image": ("c.png", COFFEE)}).json()
    sid = session["id"]
    done = a.post(
        f"/v1/sessions/{sid}/edits", files=[("mask", ("m.png", MASK))], data={"prompt": "remove the table"}
    ).json()
    assert done["status"] == "succeeded", done
    sha = done["images"][0]["sha256"]
    probes = [
        ("GET", f"/v1/sessions/{sid}"), ("GET", f"/v1/sessions/{sid}/versions/1"),
        ("GET", f"/v1/sessions/{sid}/versions/1/image"), ("GET", f"/v1/sessions/{sid}/compare?a=0&b=1"),
        ("POST", f"/v1/sessions/{sid}/versions/1/retry"), ("GET", f"/v1/edits/{done['id']}"),
        ("GET", f"/v1/files/{sha}"), ("GET", f"/v1/files/{session['versions'][0]['image']['sha256']}"),
        ("DELETE", f"/v1/sessions/{sid}"),
    ]  # fmt: skip
    for method, path in probes:
        theirs, missing = b.request(method, path), b.request(method, path.replace(sid, "ses_" + "0" * 32))
        assert theirs.status_code == missing.status_code == 404, (method, path, theirs.text)
        assert theirs.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"
    edit_b = b.post(f"/v1/sessions/{sid}/edits", data={"prompt": "remove the table"})
    assert edit_b.status_code == 404
    assert a.get(f"/v1/sessions/{sid}").status_code == 200, "tenant A still sees its own session"
    assert a.get(f"/v1/files/{sha}").status_code == 200
    a.close()
    b.close()


def test_two_processes_share_one_postgres(make_server: Callable[..., str], fresh_db: Callable[[], str | None],
                                         tmp_path_factory: pytest.TempPathFactory, backend: str) -> None:  # fmt: skip
    if backend != "postgresql":
        pytest.skip("replicas share PostgreSQL; SQLite is the single-process default")
    pg_url = fresh_db()
    shared_blobs = tmp_path_factory.mktemp("shared")
    one = make_server(data_dir=shared_blobs, database_url=pg_url)
    two = make_server(data_dir=shared_blobs, database_url=pg_url)
    sid = httpx.post(f"{one}/v1/sessions", files={"image": ("c.png", COFFEE)}).json()["id"]
    seen = httpx.get(f"{two}/v1/sessions/{sid}")
    assert seen.status_code == 200 and seen.json()["versions"][0]["number"] == 0
    r = httpx.post(f"{two}/v1/sessions/{sid}/edits", files=[("mask", ("m.png", MASK))],
                   data={"prompt": "remove the table"}, timeout=60)  # fmt: skip
    assert r.status_code == 200 and r.json()["version"] == 1
    assert len(httpx.get(f"{one}/v1/sessions/{sid}").json()["versions"]) == 2
