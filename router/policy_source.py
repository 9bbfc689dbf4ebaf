"""Where the running policy comes from, and replacing it without a restart.

A reload parses and validates the whole file first; an invalid file (a duplicate key included) is
refused with a logged error naming the line of each problem, and the running policy stays. Reloads
come from SIGHUP and from the file changing on disk.
"""

from __future__ import annotations

import asyncio
import time
from importlib import resources
from pathlib import Path
from typing import Any

import structlog

from policies.model import Policy, PolicyError, parse_policy
from router.model_params import route_model_problems

log = structlog.get_logger("editgate.policy")


def read_policy(path: Path | None) -> Policy:
    if path:
        return checked(parse_policy(path.read_text()))
    return checked(parse_policy(resources.files("policies").joinpath("default.yaml").read_text()))


def checked(policy: Policy) -> Policy:
    """A policy whose routes name only models their providers serve (the catalog's; the engine cannot know)."""
    if problems := route_model_problems(policy):
        raise PolicyError(problems)
    return policy


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
        try:
            policy = checked(parse_policy(self.path.read_text()))
        except PolicyError as exc:
            return self._refused(exc.problems)
        except (OSError, UnicodeDecodeError) as exc:
            return self._refused([str(exc)])
        self.apply(policy)
        self.loaded_at, self.error = time.time(), None
        log.info("policy_reloaded", path=str(self.path), version=policy.version, digest=policy.digest)
        return True

    def _refused(self, problems: list[str]) -> bool:
        self.failed_at, self.error = time.time(), problems
        log.error("policy_rejected", path=str(self.path), errors=problems, kept="running policy")
        return False

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
