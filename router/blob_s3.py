"""Blobs in an S3-compatible object store, through obstore (Rust's ``object_store``: one well-kept client for
S3, GCS and Azure with retries, and it releases the GIL while it waits on the network).

The same content addressing as the disk store (``ab/cd/abcd…`` under the prefix). Two things the disk
store gets from the file system are done with the object's own metadata: "in use now" is a fresh
``last_modified`` (a repeated put rewrites the object), and the retention sweeper's ``idle`` lists the
objects whose ``last_modified`` is older than the cut-off.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import obstore
from obstore.store import S3Store, from_url

from router.blobs import is_sha256


def _key(sha: str) -> str:
    return f"{sha[:2]}/{sha[2:4]}/{sha}"


class ObjectBlobStore:
    def __init__(self, store: S3Store) -> None:
        self.store = store

    @classmethod
    def from_url(cls, url: str) -> ObjectBlobStore:
        """``s3://bucket/prefix``; ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
        ``AWS_REGION`` (and ``AWS_ALLOW_HTTP=true`` for a plain-HTTP endpoint) come from the environment."""
        store = from_url(url)
        if not isinstance(store, S3Store):
            raise ValueError(f"not an S3 URL: {url!r}")
        return cls(store)

    def put(self, data: bytes, sha256: str | None = None) -> str:
        sha = sha256 or hashlib.sha256(data).hexdigest()
        obstore.put(self.store, _key(sha), data)  # also refreshes last_modified of an existing copy
        return sha

    def get(self, sha256: str) -> bytes | None:
        if not is_sha256(sha256):
            return None
        try:
            return bytes(obstore.get(self.store, _key(sha256)).bytes())
        except FileNotFoundError:
            return None

    def path(self, sha256: str) -> Path | None:
        return None  # nothing is on local disk: callers get() the bytes

    def delete(self, sha256: str, grace_s: float = 0.0) -> None:
        if not is_sha256(sha256):
            return
        try:
            if grace_s > 0:
                meta = obstore.head(self.store, _key(sha256))
                if time.time() - meta["last_modified"].timestamp() < grace_s:
                    return
            obstore.delete(self.store, _key(sha256))
        except FileNotFoundError:
            pass

    def idle(self, older_than_s: float, limit: int) -> list[str]:
        cutoff, found = time.time() - older_than_s, []
        for batch in obstore.list(self.store, chunk_size=1000):
            for meta in batch:
                name = meta["path"].rsplit("/", 1)[-1]
                if is_sha256(name) and meta["last_modified"].timestamp() < cutoff:
                    found.append(name)
                    if len(found) >= limit:
                        return found
        return found
