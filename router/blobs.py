"""Content-addressed blob storage: rows and responses hold sha256 hashes, never bytes.

The local-disk store is the embedded default; an S3-compatible object store (router/blob_s3.py,
``EDITGATE_BLOB_URL=s3://bucket/prefix``) implements the same methods for replicas that share blobs.
Every method blocks: callers run them on the worker threads (``gw.workers.run``), never on the loop.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Protocol

_SHA = re.compile(r"^[0-9a-f]{64}$")


class BlobStore(Protocol):
    def put(self, data: bytes, sha256: str | None = None) -> str:
        """Store once; storing the same bytes again marks them as in use now (see ``delete``'s grace)."""
        ...

    def get(self, sha256: str) -> bytes | None:
        """The bytes, or None when there is no such blob (or the id is not a sha256)."""
        ...

    def path(self, sha256: str) -> Path | None:
        """A local file holding the blob, where the store has one (disk), so it can be sent or re-read
        without a copy in memory; None for remote stores, which callers must then ``get``."""
        ...

    def delete(self, sha256: str, grace_s: float = 0.0) -> None: ...
    def idle(self, older_than_s: float, limit: int) -> list[str]: ...


def is_sha256(value: str) -> bool:
    return bool(_SHA.match(value))


class DiskBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _where(self, sha: str) -> Path:
        return self.root / sha[:2] / sha[2:4] / sha

    def put(self, data: bytes, sha256: str | None = None) -> str:
        """Write once (atomically); an identical blob is stored only once. A caller that has already hashed
        ``data`` passes the digest, so a megabyte is not hashed twice per edit."""
        sha = sha256 or hashlib.sha256(data).hexdigest()
        target = self._where(sha)
        if target.exists():
            os.utime(target)  # "in use now": a concurrent delete of another session's copy spares it
            return sha
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        Path(tmp).replace(target)
        return sha

    def get(self, sha256: str) -> bytes | None:
        path = self.path(sha256)
        try:
            return path.read_bytes() if path else None
        except FileNotFoundError:  # deleted between the two calls
            return None

    def path(self, sha256: str) -> Path | None:
        if not _SHA.match(sha256):
            return None
        target = self._where(sha256)
        return target if target.is_file() else None

    def delete(self, sha256: str, grace_s: float = 0.0) -> None:
        """Remove a file unless it was written or reused within ``grace_s`` (then garbage collection will)."""
        if not _SHA.match(sha256):
            return
        target = self._where(sha256)
        try:
            if time.time() - target.stat().st_mtime >= grace_s:
                target.unlink(missing_ok=True)
        except FileNotFoundError:
            pass

    def idle(self, older_than_s: float, limit: int) -> list[str]:
        """Files untouched for ``older_than_s``: candidates for garbage collection if nothing references them."""
        cutoff, found = time.time() - older_than_s, []
        for path in self.root.glob("*/*/*"):
            if _SHA.match(path.name) and path.stat().st_mtime < cutoff:
                found.append(path.name)
                if len(found) >= limit:
                    break
        return found


def open_blob_store(url: str | None, data_dir: Path) -> BlobStore:
    """``EDITGATE_BLOB_URL``: unset → local disk under the data dir; ``s3://bucket/prefix`` → the object store
    (endpoint and credentials from the standard ``AWS_*`` environment)."""
    if not url:
        return DiskBlobStore(data_dir / "blobs")
    if url.startswith("s3://"):
        from router.blob_s3 import ObjectBlobStore  # obstore loads only where it is used

        return ObjectBlobStore.from_url(url)
    raise ValueError(f"EDITGATE_BLOB_URL must be unset or s3://bucket/prefix, not {url!r}")
