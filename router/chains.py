"""Provider chains whose state is a blob: a Gemini version keeps the conversation so far.

A Responses chain is an id (``previous_response_id``) and lives in ``versions.chain_response_id``. A
Gemini chain is the history itself (every turn as the model returned it, thought signatures
included; megabytes), so it is stored as a content-addressed blob of kind ``chain`` owned by the
session, and ``chain_response_id`` holds its sha256. The next round on the same model reads it back
and sends only the new instruction; a round that lands elsewhere replays statelessly from the
parent's image (the caller's ``chain.note`` says so).
"""

from __future__ import annotations

from dataclasses import dataclass

from policies import Candidate
from providers.gemini_image import history_model
from router.blobs import BlobStore
from router.storage.models import Version
from router.workers import ImageWorkers

HISTORY_PROVIDER = "gemini"
CHAIN_KIND = "chain"


@dataclass(frozen=True, slots=True)
class History:
    model: str
    blob: bytes

    def for_candidate(self, candidate: Candidate) -> bytes | None:
        """Only the same model can continue: its signatures are valid nowhere else."""
        same = candidate.provider == HISTORY_PROVIDER and candidate.model == self.model
        return self.blob if same else None


async def parent_history(parent: Version, blobs: BlobStore, workers: ImageWorkers) -> History | None:
    """The parent's Gemini conversation, if it has one and its blob is still stored."""
    sha = parent.chain_response_id
    if parent.provider != HISTORY_PROVIDER or not sha or (path := blobs.path(sha)) is None:
        return None
    data = await workers.run(path.read_bytes)
    try:
        model = history_model(data)
    except (ValueError, AttributeError):  # not a history (a damaged file): the round starts afresh
        return None
    return History(model, data) if model else None


def carried_input(parent: Version, chainable: bool) -> dict[str, int]:
    """Input tokens a continued conversation sends again, for the estimate: everything the parent's call
    read plus the image and text it answered with (the source is not uploaded again)."""
    if not chainable or parent.provider != HISTORY_PROVIDER or not parent.chain_response_id:
        return {}
    usage = ((parent.result or {}).get("cost") or {}).get("usage") or {}
    return {
        "input_text_tokens": usage.get("input_text_tokens", 0) + usage.get("output_text_tokens", 0),
        "input_image_tokens": usage.get("input_image_tokens", 0) + usage.get("output_image_tokens", 0),
    }


async def store_history(blob: bytes | None, blobs: BlobStore, workers: ImageWorkers) -> tuple[str, int] | None:
    """Write a result's conversation: its sha256 and size, for the version row and the session's blobs."""
    if blob is None:
        return None
    return await workers.run(lambda: blobs.put(blob)), len(blob)
