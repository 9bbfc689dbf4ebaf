"""Where the running policy comes from, and replacing it without a restart.

A reload parses and validates the whole file first; an invalid file is refused with a logged error
and the running policy stays. Reloads come from SIGHUP and from the file changing on disk.
"""

from __future__ import annotations

import asyncio
import time
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
import yaml
from pydantic import ValidationError

from policies.model import Policy, parse_policy

log = structlog.get_logger("editgate.policy")


def read_policy(path: Path | None) -> Policy:
    if path:
        return parse_policy(path.read_text())
    return parse_policy(resources.files("policies").joinpath("default.yaml").read_text())


def locate(text: str, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (as deep as the path exists), for error messages."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(key)), None)
            if match is None:
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def explain_error(text: str, exc: Exception) -> list[str]:
    """Human messages for an invalid policy, each pointing at a line where it can."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return [f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"]
    if isinstance(exc, ValidationError):
        out = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            line = locate(text, tuple(err["loc"]))
            out.append(f"line {line or '?'}: {where}: {err['msg']}")
        return out
    return [str(exc)]


class PolicyReloader:
    """Owns reloading: ``reload()`` from SIGHUP or the file watcher; the gateway's policy is swapped whole."""

    def __init__(self, path: Path | None, apply: Any) -> None:
        self.path = path
        self.apply = apply
        self.loaded_at = time.time()
        self.failed_at: float | None = None
        self.error: list[str] | None = None
        """Why the last reload was refused (None once a reload succeeds): the running policy is older than the file."""
        self._mtime = path.stat().st_mtime if path and path.exists() else None

    def reload(self) -> bool:
        if self.path is None:
            return False
        text = ""
        try:
            text = self.path.read_text()
            policy = parse_policy(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            self.failed_at, self.error = time.time(), explain_error(text, exc)
            log.error("policy_rejected", path=str(self.path), errors=self.error, kept="running policy")
            return False
        self.apply(policy)
        self.loaded_at, self.error = time.time(), None
        log.info("policy_reloaded", path=str(self.path), version=policy.version, digest=policy.digest)
        return True

    def status(self) -> dict[str, Any]:
        """What an operator needs to know: when the running policy was loaded, and a refused reload's errors."""
        return {"path": str(self.path) if self.path else None, "loaded_at": self.loaded_at,
                "failed_at": self.failed_at, "error": self.error}  # fmt: skip

    async def watch(self, interval_s: float = 1.0) -> None:
        while self.path is not None:
            await asyncio.sleep(interval_s)
            try:
                mtime = self.path.stat().st_mtime
            except OSError:
                continue
            if mtime != self._mtime:
                self._mtime = mtime
                self.reload()
