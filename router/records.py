"""Durable edit records: what was asked, with which inputs, and what came back (or what failed).

A failed provider call keeps its record with the stored inputs and settings, so nothing the caller
uploaded is lost. One JSON document per edit under the data directory.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

_ID = re.compile(r"^edit_[0-9a-f]{32}$")


class EditRecords:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def put(self, edit_id: str, record: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
        Path(tmp).replace(self.root / f"{edit_id}.json")

    def get(self, edit_id: str) -> dict[str, Any] | None:
        if not _ID.match(edit_id):
            return None
        path = self.root / f"{edit_id}.json"
        if not path.is_file():
            return None
        return json.loads(path.read_text())
