"""What a provider can do, as data, and the one check that compares it with a request.

Capabilities are checked here, before dispatch, so a request is never sent to a provider that would
silently ignore part of it (a mask, a reference image, a transparent background).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from policies.features import Features


class Capabilities(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt_guided: bool = True
    removal: bool = True
    outpaint: bool = True
    variation: bool = True
    generation: bool = True
    native_mask: bool = False
    max_refs: int = 0
    max_n: int = 1
    transparent: bool = False
    multi_turn: bool = False
    text_rendering: bool = False
    native_4k: bool = False
    max_edge: int = 4096


def missing_capabilities(caps: Capabilities, f: Features) -> list[str]:
    """Names of the capabilities ``f`` needs that ``caps`` lacks, each with the reason it is needed."""
    missing: list[str] = []
    if f.mode == "variation" and not caps.variation:
        missing.append("variation (mode=variation)")
    if f.mode == "outpaint" and not caps.outpaint:
        missing.append("outpaint (mode=outpaint)")
    if f.mode == "generate" and not caps.generation:
        missing.append("generation (text-to-image)")
    if f.mode == "inpaint" and not caps.prompt_guided:
        if not f.has_mask:
            missing.append("prompt_guided (an edit without a mask needs a provider that follows the prompt)")
        elif not (f.removal and caps.removal):
            missing.append("prompt_guided (only removal edits such as 'remove the ...' can be served without it)")
    if f.n_refs > caps.max_refs:
        missing.append(f"references (asked for {f.n_refs}, at most {caps.max_refs})")
    if f.n > caps.max_n:
        missing.append(f"n (asked for {f.n} images, at most {caps.max_n})")
    if f.transparent and not caps.transparent:
        missing.append("transparent (background=transparent)")
    return missing
