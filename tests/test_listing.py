"""GET /v1/edits and GET /v1/sessions over real HTTP, on SQLite and PostgreSQL: tenant-scoped, newest
first, keyset pages that see every row once while new ones arrive, filters, and refusals of a bad
cursor or limit in the error shape."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.cursor import decode_cursor, encode_cursor
from router.errors import ApiError
from router.storage.db import database_url, make_engine
from router.storage.store import VERSION_ID, Store
from tests.conftest import fixture_bytes

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")
T = TypeVar("T")
OLD = 1_000_000_000.0  # 2001-09-09T01:46:40Z


@pytest.fixture(scope="module")
def stack(make_server: Callable[..., str], fresh_db: Callable[[], str | None], backend: str,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # fmt: skip
    data_dir = tmp_path_factory.mktemp("listing")
    db = fresh_db()  # a database of its own: the keys made here turn auth on for everyone on it
    # rows are written straight into the database in every state: the queue worker and recovery must not move them
    quiet = {"queue_poll_s": 3600.0, "recovery_interval_s": 3600.0}
    return {"url": make_server(data_dir=data_dir, database_url=db, **quiet), "db": database_url(db, data_dir),
            "backend": backend}  # fmt: skip


def with_store(stack: dict[str, Any], work: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        store = Store(make_engine(stack["db"]))
        try:
            return await work(store)
        finally:
            await store.engine.dispose()

    return asyncio.run(run())


@pytest.fixture()
def tenant(stack: dict[str, Any], request: pytest.FixtureRequest) -> Iterator[tuple[str, httpx.Client]]:
    """A tenant of this test's own (named after it) and a client holding its key."""
    name = f"{request.node.originalname.removeprefix('test_')[:24]}-{stack['backend']}".replace("_", "-")
    key = with_store(stack, lambda s: s.create_key(name))
    with httpx.Client(base_url=stack["url"], headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
        yield name, c


def new_session(c: httpx.Client, meta: str = "{}") -> str:
    r = c.post("/v1/sessions", files={"image": ("coffee.png", COFFEE)}, data={"metadata": meta})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def real_edit(c: httpx.Client, sid: str) -> dict[str, Any]:
    r = c.post(
        f"/v1/sessions/{sid}/edits",
        files=[("mask", ("m.png", MASK))],
        data={"prompt": "remove the table", "parent_version": "0"},
    )
    assert r.status_code == 200, r.text
    return r.json()


def add_versions(stack: dict[str, Any], tenant: str, sid: str, *rows: dict[str, Any]) -> list[str]:
    """Versions written as the service writes them (what the lifecycle work will write, too)."""

    async def add(store: Store) -> list[str]:
        ids = []
        for row in rows:
            created_at = row.pop("created_at", None)
            version = await store.add_version(tenant, sid, **{"status": "succeeded", "parent_number": 0, **row})
            if created_at is not None:
                await store.update_version(version.id, created_at=created_at)
            ids.append(version.id)
        return ids

    return with_store(stack, add)


def walk(c: httpx.Client, path: str, between: Callable[[], None] = lambda: None, **params: Any) -> list[dict]:
    """Every item of a listing, page by page, calling ``between`` after each page."""
    items: list[dict] = []
    cursor = None
    for _ in range(100):
        r = c.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["has_more"] == (page["next_cursor"] is not None)
        items += page["data"]
        if not page["has_more"]:
            return items
        cursor = page["next_cursor"]
        between()
    raise AssertionError("the listing never ended")


def error(r: httpx.Response) -> tuple[int, str, str | None]:
    return r.status_code, r.json()["error"]["code"], r.json()["error"]["param"]


def test_edits_walk_every_row_once_while_new_ones_arrive(
    stack: dict[str, Any], tenant: tuple[str, httpx.Client]
) -> None:
    name, c = tenant
    sid = new_session(c)
    first = real_edit(c, sid)["id"]
    tied = 1_700_000_000.25  # several rows on one timestamp: the id breaks the tie, no row is lost or repeated
    existing = [first, *add_versions(stack, name, sid, *({"created_at": tied} for _ in range(5)),
                                     *({} for _ in range(6)))]  # fmt: skip
    arrived: list[str] = []

    def insert() -> None:  # a stored row, and (twice) a real edit through the API
        arrived.extend(add_versions(stack, name, sid, {}))
        if len(arrived) < 4:
            arrived.append(real_edit(c, sid)["id"])

    items = walk(c, "/v1/edits", insert, limit=4)
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids)), "a row was listed twice"
    assert set(ids) == set(existing), "every row that existed when the walk began, and only those"
    created = [i["created"] for i in items]
    assert created == sorted(created, reverse=True), "newest first"
    same_time = [i["id"] for i in items if i["created"] == int(tied)]
    assert len(same_time) == 5 and same_time == sorted(same_time, reverse=True), "ties in id order"
    assert all(i["version"] > 0 for i in items), "version 0 is the upload, not an edit"
    fresh = [i["id"] for i in c.get("/v1/edits", params={"limit": 100}).json()["data"]]
    assert set(fresh) == set(existing) | set(arrived) and fresh[0] in arrived


def test_sessions_walk_every_row_once_with_their_versions(
    stack: dict[str, Any], tenant: tuple[str, httpx.Client]
) -> None:
    name, c = tenant
    sids = [new_session(c, json.dumps({"n": n})) for n in range(7)]
    add_versions(stack, name, sids[0], {}, {"status": "failed", "result": {"error": {"code": "provider_error"}}})
    arrived: list[str] = []
    items = walk(c, "/v1/sessions", lambda: arrived.append(new_session(c)), limit=3)
    ids = [i["id"] for i in items]
    assert ids == sids[::-1], "newest first, each once, none of those created during the walk"
    oldest = items[-1]
    assert oldest["metadata"] == {"n": 0} and oldest["version_count"] == 3
    assert (oldest["latest_version"], oldest["latest_status"]) == (2, "failed")
    assert (items[0]["version_count"], items[0]["latest_version"], items[0]["latest_status"]) == (1, 0, "succeeded")
    assert items[0]["expires_at"] > items[0]["created"]
    assert len(c.get("/v1/sessions", params={"limit": 100}).json()["data"]) == len(sids) + len(arrived)


def test_edit_filters(stack: dict[str, Any], tenant: tuple[str, httpx.Client]) -> None:
    name, c = tenant
    s1, s2 = new_session(c), new_session(c)
    done = real_edit(c, s1)
    states = ["failed", "running", "queued", "interrupted", "canceled"]
    rows = [{"status": s, "result": {"error": {"code": "provider_error"}}} if s == "failed" else {"status": s}
            for s in states]  # fmt: skip
    by_state = dict(zip(states, add_versions(stack, name, s1, *rows), strict=True))
    (shadow,) = add_versions(stack, name, s1, {"shadow_of": done["version"]})
    (old,) = add_versions(stack, name, s2, {"created_at": OLD})

    def listed(**params: Any) -> list[dict]:
        r = c.get("/v1/edits", params={"limit": 100, **params})
        assert r.status_code == 200, r.text
        return r.json()["data"]

    everything = listed()
    assert {i["id"] for i in everything} == {done["id"], *by_state.values(), old}, "no version 0, no shadow"
    item = next(i for i in everything if i["id"] == done["id"])
    assert item["provider"] == "local" and item["status"] == "succeeded" and item["error_code"] is None
    assert item["image"] == {k: v for k, v in done["images"][0].items() if k not in ("b64_json", "provenance")}
    assert item["cost"] == {k: done["cost"][k] for k in ("estimated_usd", "actual_usd")}
    assert (item["session_id"], item["version"], item["parent_version"]) == (s1, 1, 0)
    for state, version_id in by_state.items():
        (only,) = listed(status=state)
        assert only["id"] == version_id and only["status"] == state
    assert listed(status="failed")[0]["error_code"] == "provider_error"
    assert [i["id"] for i in listed(session_id=s2)] == [old]
    recent = {i["id"] for i in everything} - {old}
    assert {i["id"] for i in listed(since=str(OLD + 1))} == recent
    assert {i["id"] for i in listed(since="2001-09-09T01:46:41Z")} == recent
    assert {i["id"] for i in listed(since="2001-09-09T03:46:40+02:00")} == recent | {old}
    assert [i["id"] for i in listed(status="succeeded", session_id=s2, since=int(OLD))] == [old]
    with_shadow = listed(include_shadow="true")
    assert {i["id"] for i in with_shadow} - {i["id"] for i in everything} == {shadow}
    assert next(i for i in with_shadow if i["id"] == shadow)["shadow_of"] == done["version"]
    assert error(c.get("/v1/edits", params={"status": "done"})) == (400, "invalid_parameter", "status")
    assert error(c.get("/v1/edits", params={"session_id": "nope"})) == (400, "invalid_parameter", "session_id")
    for bad in ("yesterday", "2025-01-01T00:00:00", "nan", "inf"):
        assert error(c.get("/v1/edits", params={"since": bad})) == (400, "invalid_parameter", "since"), bad
    assert error(c.get("/v1/sessions", params={"since": "soon"})) == (400, "invalid_parameter", "since")
    assert [i["id"] for i in c.get("/v1/sessions", params={"since": OLD}).json()["data"]] == [s2, s1]
    assert c.get("/v1/sessions", params={"since": datetime.now(UTC).isoformat()}).json()["data"] == []


def test_each_tenant_lists_only_its_own(stack: dict[str, Any], tenant: tuple[str, httpx.Client]) -> None:
    name, a = tenant
    sid = new_session(a)
    real_edit(a, sid)
    add_versions(stack, name, sid, {})
    other_key = with_store(stack, lambda s: s.create_key(f"other-{stack['backend']}"))
    admin_key = with_store(stack, lambda s: s.create_key(f"ops-{stack['backend']}", admin=True))
    page = a.get("/v1/edits", params={"limit": 1}).json()
    assert len(page["data"]) == 1 and page["has_more"]
    for key in (other_key, admin_key):
        with httpx.Client(base_url=stack["url"], headers={"Authorization": f"Bearer {key}"}) as b:
            assert b.get("/v1/edits").json() == {"data": [], "next_cursor": None, "has_more": False}
            assert b.get("/v1/sessions").json() == {"data": [], "next_cursor": None, "has_more": False}
            assert b.get("/v1/edits", params={"session_id": sid}).json()["data"] == []
            assert error(b.get("/v1/edits", params={"cursor": page["next_cursor"]})) == (
                400,
                "invalid_cursor",
                "cursor",
            )
    assert httpx.get(f"{stack['url']}/v1/edits").status_code == 401
    assert [s["id"] for s in a.get("/v1/sessions").json()["data"]] == [sid]


def test_bad_cursor_and_limit_are_refused(stack: dict[str, Any], tenant: tuple[str, httpx.Client]) -> None:
    name, c = tenant
    for sid in (new_session(c), new_session(c)):
        add_versions(stack, name, sid, {})
    cursor = c.get("/v1/edits", params={"limit": 1}).json()["next_cursor"]
    session_cursor = c.get("/v1/sessions", params={"limit": 1}).json()["next_cursor"]
    assert c.get("/v1/edits", params={"cursor": cursor}).status_code == 200
    raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    forged = (
        [raw[0] + 1, raw[1], raw[2]],
        [raw[0], raw[1][:-1] + ("1" if raw[1][-1] == "0" else "0"), raw[2]],
        [raw[0], raw[1]],
        "x",
        [1e400, raw[1], raw[2]],
    )
    bad = [
        cursor[:-2], cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:], cursor + "!", "", "%%%", "a" * 500,
        base64.urlsafe_b64encode(b"not json").decode(), session_cursor,
        *(base64.urlsafe_b64encode(json.dumps(f).encode()).decode() for f in forged),
    ]  # fmt: skip
    for value in bad:
        assert error(c.get("/v1/edits", params={"cursor": value})) == (400, "invalid_cursor", "cursor"), value
    assert error(c.get("/v1/sessions", params={"cursor": cursor})) == (400, "invalid_cursor", "cursor")
    for path in ("/v1/edits", "/v1/sessions"):
        for limit in ("0", "101", "-1", "ten", "1.5"):
            assert error(c.get(path, params={"limit": limit})) == (400, "invalid_parameter", "limit"), (path, limit)
        assert len(c.get(path, params={"limit": 100}).json()["data"]) == 2


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=250) | st.binary(max_size=180).map(lambda b: base64.urlsafe_b64encode(b).decode()))
def test_any_cursor_is_a_key_or_a_400(cursor: str) -> None:
    try:
        decode_cursor("edits", "acme", cursor, VERSION_ID)
    except ApiError as exc:
        assert (exc.status, exc.code, exc.param) == (400, "invalid_cursor", "cursor")


def test_a_cursor_round_trips_its_exact_key() -> None:
    key = (1_735_689_600.123_456_7, "ver_" + "ab" * 16)
    assert decode_cursor("edits", "acme", encode_cursor("edits", "acme", key), VERSION_ID) == key
    for listing, tenant in (("sessions", "acme"), ("edits", "globex")):
        with pytest.raises(ApiError):
            decode_cursor(listing, tenant, encode_cursor("edits", "acme", key), VERSION_ID)
