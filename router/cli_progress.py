"""Follow an edit's server-sent events to its end for the CLI: one progress line on stderr (phase, provider,
elapsed time), previews saved as they come, and a dropped stream resumed with ``Last-Event-ID``."""

from __future__ import annotations

import base64
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx
from httpx_sse import ServerSentEvent, connect_sse

TERMINAL = ("completed", "failed")
RETRY_PAUSE_S = 1.0
TICK_S = 0.5


@dataclass(slots=True)
class Progress:
    """What the user sees while the edit runs; redrawn in place when stderr is a terminal, silent otherwise
    (a script that pipes the CLI gets only the final line)."""

    edit_id: str
    live: bool = field(default_factory=lambda: stderr_is_terminal())
    phase: str = "submitted"
    provider: str | None = None
    started: float = field(default_factory=time.monotonic)
    _width: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopped: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Progress:
        if self.live:  # the clock keeps moving between events (a render is silent for a minute)
            threading.Thread(target=self._tick, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self.clear()

    def _tick(self) -> None:
        while not self._stopped.wait(TICK_S):
            self.draw()

    def update(self, event: ServerSentEvent) -> None:
        data = event.json() if event.data else {}
        self.phase = phase_of(event.event, data) or self.phase
        self.provider = data.get("provider") or next(iter(data.get("candidates") or []), self.provider)
        self.draw()

    def draw(self) -> None:
        via = f" via {self.provider}" if self.provider else ""
        line = f"{self.edit_id}: {self.phase}{via} {time.monotonic() - self.started:5.1f}s"
        with self._lock:
            if self.live and not self._stopped.is_set():
                click.echo("\r" + line.ljust(self._width), nl=False, err=True)
                self._width = len(line)

    def clear(self) -> None:
        with self._lock:
            if self.live and self._width:
                click.echo("\r" + " " * self._width + "\r", nl=False, err=True)
                self._width = 0


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def phase_of(kind: str, data: dict[str, Any]) -> str | None:
    """The phase an event moves the edit to, in words."""
    if kind == "queued":
        position = data.get("position", 0)
        return f"queued (position {position})" if position else "queued"
    if kind == "routed":
        return f"routed by rule {data.get('rule')}"
    if kind == "attempt":  # the provider is shown beside the phase
        fallback = " (fallback)" if data.get("fallback") else ""
        return f"attempt {data.get('outcome')}{fallback}"
    if kind == "partial_image":
        return f"partial {int(data.get('index', 0)) + 1}"
    if kind in TERMINAL:
        return "done" if kind == "completed" else "failed"
    return None


def save_partial(event: ServerSentEvent, partials: Path) -> None:
    """A preview as ``partials/partial-<index>.<format>``; replayed previews of a finished edit carry no bytes."""
    data = event.json()
    if "b64_json" in data:
        partials.mkdir(parents=True, exist_ok=True)
        (partials / f"partial-{data['index']}.{data['format']}").write_bytes(base64.b64decode(data["b64_json"]))


def follow(client: httpx.Client, edit_id: str, headers: dict[str, str], timeout: float,
           partials: Path | None = None) -> tuple[str, dict[str, Any]]:  # fmt: skip
    """Read the edit's events until ``completed`` or ``failed``: its type and data. A stream that drops
    (or ends early) is opened again after the last event seen, until ``timeout`` seconds have passed."""
    last_id = ""
    deadline = time.monotonic() + timeout
    with Progress(edit_id) as progress:
        while time.monotonic() < deadline:
            try:
                for event in _events(client, edit_id, {**headers, "Last-Event-ID": last_id}):
                    last_id = event.id or last_id
                    progress.update(event)
                    if event.event == "partial_image" and partials is not None:
                        save_partial(event, partials)
                    if event.event in TERMINAL:
                        return event.event, event.json()
            except httpx.TransportError:
                pass
            time.sleep(RETRY_PAUSE_S)
    raise click.ClickException(f"{edit_id} did not finish within {timeout:g}s; resume with: editgate wait {edit_id}")


def _events(client: httpx.Client, edit_id: str, headers: dict[str, str]) -> Any:
    with connect_sse(client, "GET", f"/v1/edits/{edit_id}/events", headers=headers) as source:
        if source.response.status_code != 200:
            source.response.read()
            raise click.ClickException(api_error(source.response))
        yield from source.iter_sse()


def api_error(response: httpx.Response) -> str:
    try:
        err = response.json().get("error", {})
    except ValueError:
        return f"{response.status_code}: {response.text[:200]}"
    return f"{response.status_code} {err.get('code')}: {err.get('message')}"
