"""Blobs in an S3-compatible object store (``EDITGATE_BLOB_URL=s3://bucket/prefix``), against a real S3 HTTP
server (moto's standalone server, a stand-in for S3/MinIO): the store's own contract, then edits, downloads,
deletion and the retention sweep through the API."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator

import httpx
import obstore
import pytest

from router.blob_s3 import ObjectBlobStore
from tests.conftest import decode, fixture_bytes
from tests.s3_server import CREDENTIALS, create_bucket, s3_server

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")


@pytest.fixture(scope="session")
def s3() -> Iterator[str]:
    """Session-wide, as the servers that use it are (they outlive any one module)."""
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture()
def s3_env(s3: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": s3}.items():
        monkeypatch.setenv(name, value)
    return s3


def _bucket(endpoint: str) -> str:
    name = f"editgate-{time.monotonic_ns()}"
    create_bucket(endpoint, name)
    return name


def _objects(store: ObjectBlobStore) -> list[str]:
    return sorted(meta["path"] for batch in obstore.list(store.store) for meta in batch)


def test_the_store_puts_gets_deletes_and_lists_idle_objects_under_its_prefix(s3_env: str) -> None:
    store = ObjectBlobStore.from_url(f"s3://{_bucket(s3_env)}/tenant-blobs")
    sha = store.put(b"pixels")
    assert sha == hashlib.sha256(b"pixels").hexdigest()
    assert store.get(sha) == b"pixels"
    assert store.path(sha) is None  # nothing local: callers get() the bytes
    assert _objects(store) == [f"{sha[:2]}/{sha[2:4]}/{sha}"]
    assert store.get("0" * 64) is None and store.get("../../etc/passwd") is None

    assert store.idle(older_than_s=3600, limit=10) == []  # just written: in use
    assert store.idle(older_than_s=-1, limit=10) == [sha]
    store.delete(sha, grace_s=3600)  # written within the grace: kept for the next collection
    assert store.get(sha) == b"pixels"
    store.delete(sha)
    assert store.get(sha) is None
    store.delete(sha)  # deleting what is gone is quiet


def test_edits_store_their_images_in_the_bucket_and_serve_them_back(
    make_server: Callable[..., str], s3_env: str
) -> None:
    bucket = _bucket(s3_env)
    url = make_server(blob_url=f"s3://{bucket}/blobs")
    with httpx.Client(base_url=url, timeout=60) as c:
        r = c.post("/v1/edits", files={"image": ("c.png", COFFEE), "mask": ("m.png", MASK)},
                   data={"prompt": "remove the mug", "provider": "local"})  # fmt: skip
        assert r.status_code == 200, r.text
        body = r.json()
        image = body["images"][0]
        store = ObjectBlobStore.from_url(f"s3://{bucket}/blobs")
        stored = _objects(store)
        inputs = [body["inputs"]["source"]["url"], body["inputs"]["mask"]["url"]]
        assert sorted(path.rsplit("/", 1)[-1] for path in stored) == sorted(
            {image["sha256"], *(u.rsplit("/", 1)[-1] for u in inputs)}
        )

        got = c.get(image["url"])
        assert got.status_code == 200 and got.headers["content-type"] == "image/png"
        assert hashlib.sha256(got.content).hexdigest() == image["sha256"]
        version = c.get(f"/v1/sessions/{body['session_id']}/versions/{body['version']}/image")
        assert version.status_code == 200 and decode(version.content).shape[:2] == decode(got.content).shape[:2]

        # a continued round reads its parent back from the bucket
        form = {"session_id": body["session_id"], "prompt": "remove the table", "provider": "local"}
        again = c.post("/v1/edits", files={"mask": ("m.png", MASK)}, data=form)
        assert again.status_code == 200, again.text

        assert c.delete(f"/v1/sessions/{body['session_id']}").status_code == 204
        assert c.get(image["url"]).status_code == 404


def test_the_retention_sweep_removes_expired_sessions_objects(
    make_server: Callable[..., str], s3_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("router.sessions.BLOB_GRACE_S", 0.0)  # no write can race this test's deletes
    bucket = _bucket(s3_env)
    store = ObjectBlobStore.from_url(f"s3://{bucket}/p")
    url = make_server(blob_url=f"s3://{bucket}/p", retention_days=-1, sweep_interval_s=0.05)
    with httpx.Client(base_url=url, timeout=60) as c:
        sid = c.post("/v1/sessions", files={"image": ("c.png", COFFEE)}).json()["id"]
        deadline = time.monotonic() + 30
        while c.get(f"/v1/sessions/{sid}").status_code != 404 or _objects(store):
            assert time.monotonic() < deadline, f"expired session was not swept: {_objects(store)}"
            time.sleep(0.05)


def test_a_blob_url_that_is_not_s3_is_refused_at_start() -> None:
    from router.blobs import open_blob_store

    with pytest.raises(ValueError, match="s3://"):
        open_blob_store("ftp://somewhere/x", data_dir=None)  # type: ignore[arg-type]
