"""What the policy sees of a request: extracted once by intake, never the raw bytes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Mode = Literal["inpaint", "variation", "outpaint", "generate"]


class Features(BaseModel):
    """Request features the rules match on. Frozen so a decision can be replayed from them."""

    model_config = ConfigDict(frozen=True)

    has_mask: bool = False
    mask_coverage: float = 0.0
    mode: Mode = "inpaint"
    removal: bool = False
    tier: Literal["standard", "pro"] = "standard"
    quality: Literal["draft", "final"] = "final"
    out_w: int = 1024
    out_h: int = 1024
    long_edge: int = 1024
    aspect: float = 1.0
    n: int = 1
    n_refs: int = 0
    text_in_output: bool = False
    scripts: tuple[str, ...] = ()
    transparent: bool = False
    session_provider: str | None = None
    tenant: str | None = None
    requested_provider: str | None = None
    requested_model: str | None = None
    needs: tuple[str, ...] = ()
    """Model-specific parameters the request uses (``markup``, ``quality=xhigh``, ...): a candidate model that
    does not take every one is dropped, so none is ever silently left out."""
    model_specific: bool = False
    """``needs`` is not empty: what a rule matches to send such requests to a model generation that takes them."""
