"""Content-addressed blob storage: rows and responses hold sha256 hashes, never bytes.

The local-disk store is the embedded default; a shared object store implements the same three
methods for scale-out.
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
    def put(self, data: bytes, sha256: str | None = None) -> str: ...
    def path(self, sha256: str) -> Path | None: ...
    def delete(self, sha256: str, grace_s: float = 0.0) -> None: ...
    def idle(self, older_than_s: float, limit: int) -> list[str]: ...


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
