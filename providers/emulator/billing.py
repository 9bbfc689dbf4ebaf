"""What the emulated OpenAI endpoints bill beyond one image: streamed previews and a Responses chain's history.

Both are published billing rules the gateway's estimates must match, so the emulator reports them in
``usage`` exactly as the real API does:

- each streamed partial image adds a flat number of image output tokens (``catalog.yaml``);
- a round that continues a chain (``previous_response_id``) is billed, as mainline input, every earlier
  round's input and output items again: :class:`ChainHistory` keeps that count per response id.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from providers.catalog import openai_partial_image_tokens, responses_rebilled_tokens


def bill_partials(usage: dict[str, Any], partials: int) -> dict[str, Any]:
    """``usage`` (Images API or ``tool_usage.image_gen`` shape) with the streamed previews' tokens added."""
    extra = openai_partial_image_tokens(partials)
    if not extra:
        return usage
    details = dict(usage.get("output_tokens_details") or {"image_tokens": 0, "text_tokens": 0})
    details["image_tokens"] = details.get("image_tokens", 0) + extra
    return {
        **usage,
        "output_tokens": usage["output_tokens"] + extra,
        "output_tokens_details": details,
        "total_tokens": usage["total_tokens"] + extra,
    }


class ChainHistory:
    """Mainline tokens each response adds to the rounds that continue from it (bounded LRU, like the images)."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._tokens: OrderedDict[str, int] = OrderedDict()

    def carried(self, previous: str | None) -> int:
        """Tokens a round continuing ``previous`` is billed for the earlier rounds' items (0: a first round)."""
        return self._tokens.get(previous, 0) if previous else 0

    def remember(self, response_id: str, usage: dict[str, Any], images: int) -> None:
        """After a round: its whole input (history included), its output text and its images carry forward."""
        self._tokens[response_id] = responses_rebilled_tokens(usage["input_tokens"], usage["output_tokens"], images)
        self._tokens.move_to_end(response_id)
        while len(self._tokens) > self.size:
            self._tokens.popitem(last=False)


def bill_chain(usage: dict[str, Any], history: ChainHistory, previous: str | None) -> dict[str, Any]:
    """Mainline ``usage`` of a round with the earlier rounds' items added to its input, as the API bills it."""
    carried = history.carried(previous)
    if not carried:
        return usage
    return {**usage, "input_tokens": usage["input_tokens"] + carried, "total_tokens": usage["total_tokens"] + carried}
