"""JSON from untrusted callers, parsed only once its nesting depth is known to be small.

Python's parser recurses once per ``[`` or ``{``: 100,000 of them raise RecursionError, and a few
hundred parse but then recurse again in validation, storage and logging. So the depth is measured first,
without recursion and at C speed (the bytes are reduced to brackets and quotes, strings dropped), and a
body nested deeper than :data:`MAX_DEPTH` is refused before the parser sees it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from router.errors import ApiError

MAX_DEPTH = 32
"""Deep enough for any real ``metadata``; far from every recursion limit on the way to storage."""

_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_STRING = re.compile(rb'"[^"]*"')
_STEP = np.zeros(256, np.int8)
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1
_CHUNK = 1 << 20
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def deeper_than(data: bytes, max_depth: int) -> bool:
    """Whether brackets outside strings nest deeper than ``max_depth`` (exact for valid JSON, and never an
    underestimate for invalid JSON: the parser fails at the first token that breaks this reading)."""
    if b"\\" in data:  # escapes first, so that every '"' left delimits a string
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = _STRING.sub(b"", data.translate(None, _STRUCTURE)).replace(b'"', b"")
    if len(brackets) <= max_depth:
        return False
    depth = 0
    for start in range(0, len(brackets), _CHUNK):
        steps = _STEP[np.frombuffer(brackets, np.uint8, min(_CHUNK, len(brackets) - start), start)]
        running = np.cumsum(steps, dtype=np.int32) + depth
        if int(running.max()) > max_depth:
            return True
        depth = int(running[-1])
    return False


def loads(data: bytes | str, param: str | None = None, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON nested at most ``max_depth`` deep; anything else is an :class:`ApiError` naming ``param``."""
    where = f"{param}: " if param else "The body: "
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")  # JSON between systems is UTF-8 (RFC 8259); the depth scan reads UTF-8
        except UnicodeDecodeError:
            raise ApiError(400, "invalid_json", f"{where}JSON must be UTF-8 text.", param) from None
    if deeper_than(raw, max_depth):
        raise ApiError(400, "json_too_deep", f"{where}JSON nested deeper than {max_depth} levels.", param)
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"{where}not valid JSON ({exc}).", param) from None
    except ValueError as exc:  # an integer beyond Python's digit limit
        raise ApiError(400, "invalid_json", f"{where}not usable JSON ({exc}).", param) from None
    if b"\\u" in raw and _SURROGATE_ESCAPE.search(raw):  # only an escape can carry one: the text was UTF-8
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(400, "invalid_json", f"{where}a string holds a lone UTF-16 surrogate escape, which is not "
                           "text.", param) from None  # fmt: skip
    return value
