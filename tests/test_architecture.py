"""Dependencies point one way: router -> policies, providers; policies is pure; providers never use router."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_policies_do_no_io_and_import_neither_providers_nor_router() -> None:
    forbidden = {"providers", "router", "os", "time", "random", "httpx", "socket", "pathlib", "datetime"}
    for module, names in _imports("policies").items():
        assert not names & forbidden, f"{module} imports {names & forbidden}"


def test_providers_never_import_router() -> None:
    for module, names in _imports("providers").items():
        assert "router" not in names, module
