"""The one small interface every provider implements, and the values that cross it.

An adapter receives an :class:`EditJob` whose images are already validated, oriented and stripped of
metadata, and returns a :class:`ProviderResult`; it never sees HTTP requests or storage.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol, TypeVar, runtime_checkable

import anyio.to_thread
import numpy as np

from policies.capabilities import Capabilities
from providers.imaging import OutputFormat

T = TypeVar("T")
RunBlocking = Callable[[Callable[[], T]], Awaitable[T]]
"""Runs CPU-bound image work off the event loop; injected so providers share the gateway's pool."""
OnPartial = Callable[[int, bytes, str], Awaitable[None]]
"""Receives a provider's partial image as it arrives: (index, encoded bytes, mime). A preview, never a result."""
AnswerTurn = Callable[[], Awaitable[None]]
"""Awaited once the provider's answer has arrived and before its body is read: the gateway bounds how many
answers are read and decoded at once (memory), so an answer may wait here, unread, for its turn."""


async def in_worker_thread(fn: Callable[[], T]) -> T:
    """The default :data:`RunBlocking` for an adapter used outside the gateway (scripts, tests)."""
    return await anyio.to_thread.run_sync(fn)


UPLOAD_CHUNK = 1 << 20


class LargeReads(io.FileIO):
    """A stored input as an SDK streams it, read 1 MiB at a time whatever size the SDK asks for. httpx's
    multipart encoder asks for 64 KiB, and each chunk then pays a pass through h11, anyio's cancel scopes and
    the socket transport: a fifth of a pass-through edit's CPU in the profile. 1 MiB chunks pay it 16 times
    less often and still bound what an upload holds in memory."""

    def read(self, size: int | None = -1) -> bytes:
        return super().read(-1 if size is None or size < 0 else max(size, UPLOAD_CHUNK))


class ImageBlob:
    """Encoded bytes ready to send; pixels (RGB or RGBA, uint8) only once something needs them.

    Intake decodes nothing it does not have to: bytes that need no change pass through, and
    :meth:`decoded` decodes on first use (always from a worker thread, never on the event loop).
    Once stored, a blob can :meth:`release_to` its stored file: a request then waits on its provider
    holding no image in memory, and the bytes are read back (or streamed) when something needs them.
    """

    __slots__ = ("_data", "height", "mime", "nbytes", "path", "pixels", "sha256", "width")

    def __init__(
        self, data: bytes, mime: str, width: int, height: int,
        pixels: np.ndarray | None = None, sha256: str | None = None,
    ) -> None:  # fmt: skip
        self._data: bytes | None = data
        self.mime = mime
        self.width = width
        self.height = height
        self.pixels = pixels
        self.sha256 = sha256
        """Set by whoever hashes ``data`` first (the blob store), so nobody hashes it again."""
        self.nbytes = len(data)
        self.path: Path | None = None

    def __repr__(self) -> str:
        where = f"path={str(self.path)!r}" if self._data is None else f"{self.nbytes} bytes"
        return f"ImageBlob({self.mime}, {self.width}x{self.height}, {where})"

    @property
    def data(self) -> bytes:
        """The encoded bytes; read back from the stored file after :meth:`release_to` (not kept again)."""
        if self._data is not None:
            return self._data
        assert self.path is not None
        return self.path.read_bytes()

    def release_to(self, path: Path) -> None:
        """Drop the in-memory bytes and pixels; ``path`` holds exactly these bytes (content-addressed)."""
        self.path, self._data, self.pixels = path, None, None

    def upload(self) -> bytes | BinaryIO:
        """What an SDK should send: the bytes, or an open stored file it streams in chunks (caller closes it)."""
        if self._data is not None:
            return self._data
        assert self.path is not None
        return LargeReads(self.path)

    def decoded(self) -> np.ndarray:
        if self.pixels is None:
            from providers.imaging import decode

            self.pixels = decode(self.data)
        return self.pixels

    def edit_region(self) -> np.ndarray:
        """This blob read as an alpha-convention mask: the boolean edit region (True where alpha < 128).

        Intake measures the region and lets it go rather than hold a byte per pixel through a provider call
        that may last minutes; whoever needs it again (a lock, a score, an engine without native masks)
        decodes it here on first use, from a worker thread."""
        if self.pixels is None or self.pixels.dtype != np.bool_:
            from providers.imaging import decode

            self.pixels = decode(self.data)[..., 3] < 128
        return self.pixels


@dataclass(frozen=True, slots=True)
class EditJob:
    prompt: str
    model: str
    source: ImageBlob
    mode: Literal["inpaint", "variation", "outpaint", "generate"] = "inpaint"
    """``generate``: ``source`` is only a neutral canvas of the requested size; nothing is sent for it."""
    mask: ImageBlob | None = None
    """Alpha convention: alpha 0 = edit; :meth:`ImageBlob.edit_region` gives the boolean region (True = edit)."""
    references: tuple[ImageBlob, ...] = ()
    out_w: int = 1024
    out_h: int = 1024
    quality: Literal["draft", "final"] = "final"
    output_format: OutputFormat = "png"
    background: Literal["opaque", "auto", "transparent"] = "auto"
    n: int = 1
    previous_response_id: str | None = None
    chain_history: bytes | None = None
    """A chain whose state is the conversation itself (Gemini: the previous turns' contents with the model's
    thought signatures, JSON): the next turn continues it and sends only the new instruction."""
    timeout_s: float = 600.0
    """Read timeout of this call (the policy's per-provider value, capped by the route's deadline)."""
    connect_timeout_s: float = 10.0
    partial_images: int = 0
    """Previews (0-3) to ask for while the provider renders; providers that cannot stream send none."""
    on_partial: OnPartial | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    """The caller's provider-native parameters by their API names (``quality``, ``complexity``, ``moderation``,
    ...): an adapter forwards those its API takes. Model-specific ones reach only a model that takes them."""
    markup: ImageBlob | None = None
    """A transparent PNG drawn over the source to guide the edit (the models that take ``markup``)."""
    safety_identifier: str | None = None
    """The end user's identifier for the provider's abuse monitoring (the caller's, or the tenant's own)."""
    answer_turn: AnswerTurn | None = None


@dataclass(frozen=True, slots=True)
class ResultImage:
    data: bytes
    mime: str
    pixels: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass(slots=True)
class ProviderResult:
    images: list[ResultImage]
    usage: dict[str, int] = field(default_factory=dict)
    request_id: str | None = None
    chain_state: str | None = None
    chain_blob: bytes | None = None
    """Chain state too large for a column (a Gemini history, megabytes): stored as a blob, continued from it."""
    revised_prompt: str | None = None
    emulated: bool = False
    raw: dict[str, Any] = field(default_factory=dict)
    rendered: dict[str, str] = field(default_factory=dict)
    """What the provider says it did, where it says it: ``quality`` rendered, ``safety_identifier`` used."""


@runtime_checkable
class Provider(Protocol):
    name: str
    capabilities: Capabilities

    async def edit(self, job: EditJob) -> ProviderResult: ...
