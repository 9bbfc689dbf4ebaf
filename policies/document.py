"""Reading a policy file's YAML: duplicate keys refused, and every node's position kept for errors.

PyYAML lets a second ``rules:`` silently replace the first. ruamel.yaml refuses duplicate keys and
records where each key and item sits, so an error can name the line of the node that is wrong rather
than the top of the document. Scalars resolve as YAML 1.2: only ``true``/``false`` are booleans (1.1
also read ``n``, a feature's name, as false), and ``yes``/``no`` are strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

__all__ = ["DuplicateKeyError", "MarkedYAMLError", "YAMLError", "load", "plain", "position"]


def load(text: str) -> Any:
    """The document as ruamel's round-trip tree (maps and lists that know their positions)."""
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    return yaml.load(text)


def plain(node: Any) -> Any:
    """The same data as built-in types, for validation and for a policy that outlives the document."""
    if isinstance(node, dict):
        return {plain(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    for kind in (int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node


def position(doc: Any, loc: Sequence[Any]) -> tuple[int, int] | None:
    """The 1-based (line, column) of the deepest node of ``loc`` present in ``doc``.

    ``loc`` is a pydantic error location: map keys and list indexes from the root. A key that the
    error says is missing points at the mapping that lacks it.
    """
    where: tuple[int, int] | None = None
    node = doc
    for key in loc:
        if isinstance(node, CommentedMap) and key in node:
            line, col = node.lc.key(key) if isinstance(node[key], dict | list) else node.lc.value(key)
        elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
            line, col = node.lc.item(key)
        else:
            break
        where = (line + 1, col + 1)
        node = node[key]
    if where is None and isinstance(doc, CommentedMap | CommentedSeq):
        where = (doc.lc.line + 1, doc.lc.col + 1)
    return where
