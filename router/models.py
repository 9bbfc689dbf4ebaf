"""The native API's request and response shapes (see DESIGN.md "Contracts")."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from router.intake.outpaint import Anchor
from router.webhooks.guard import parse as parse_webhook_url

_SIZE = re.compile(r"^(auto|keep|[1-9]\d{0,4}x[1-9]\d{0,4})$")
_ASPECT = re.compile(r"^[1-9]\d{0,2}:[1-9]\d{0,2}$")


class EditRequest(BaseModel):
    """Everything but the images. Unknown fields are refused so a typo never goes unnoticed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    prompt: str = Field(min_length=1, description="What to change. Never logged unless enabled.")
    mode: Literal["inpaint", "variation", "outpaint", "generate"] = Field(
        "inpaint", description="'generate' makes an image from the prompt alone (no source image)."
    )
    protect: list[str] = Field(default_factory=list, description="Protection chips; see GET /v1/chips.")
    tier: Literal["standard", "pro"] = "standard"
    quality: Literal["draft", "final"] = "final"
    size: str = Field("keep", description="'WxH', 'auto' (as the provider returns it) or 'keep' (the source's).")
    aspect: str | None = Field(None, description="Outpaint target aspect such as '9:16'.")
    anchor: Anchor = Field("center", description="Where the source sits on an outpaint canvas.")
    output_format: Literal["png", "jpeg", "webp", "gif", "svg"] = Field(
        "png",
        description="gif and svg come from the newer GPT Image models only, delivered as the model made them: "
        "not resized, mask-locked or scored (gif: no mask; svg: n=1; neither streams).",
    )
    output_compression: int | None = Field(None, ge=0, le=100, description="JPEG/WebP quality, 0-100.")
    background: Literal["opaque", "auto", "transparent"] = "auto"
    n: int = Field(1, ge=1, description="Images to produce (at most the configured limit).")
    max_cost_usd: float | None = Field(
        None,
        gt=0,
        description="Refuse (402 cost_cap_exceeded) before any call when the estimate is above this (or unknown); "
        "a fallback estimated above it is not taken.",
    )
    partial_images: int = Field(
        0, ge=0, le=3, description="Previews to stream while the provider renders (events API, streaming drop-in)."
    )
    text_in_output: bool | None = Field(None, description="On-image text wanted; inferred when omitted.")
    mask_convention: Literal["auto", "alpha", "black_white"] = "auto"
    provider: str | None = Field(None, description="Ask for one provider, if the policy allows it.")
    model: str | None = Field(
        None, max_length=200, description="With `provider`: one of its models (e.g. gpt-image-2.5-flare)."
    )
    provider_params: dict[str, Any] = Field(
        default_factory=dict,
        description="Provider-native parameters by their API names (the OpenAI-compatible endpoints fill it: "
        "quality, complexity, moderation, safety_identifier, ...): forwarded to a model that takes them; a "
        "model-specific one (markup, quality xhigh) rules out every candidate model that does not.",
    )
    session_id: str | None = Field(None, description="Edit inside this session (then send no image).")
    parent_version: int | None = Field(
        None, ge=0, le=2**31 - 1, description="Branch from this version; default the latest."
    )
    include_base64: bool = Field(False, description="Also return each image as base64 in the response.")
    async_: bool = Field(
        False, alias="async", description="Answer 202 at once (the edit is queued); like `Prefer: respond-async`."
    )
    preservation: bool = Field(
        True, description="Measure drift outside the edit region. False skips the two decodes it needs (pass-through)."
    )
    experiment_key: str | None = Field(None, max_length=200, description="Sticky key for experiments that use it.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Returned unchanged.")
    webhook_url: str | None = Field(
        None,
        max_length=2048,
        description="Called (signed, Standard Webhooks) when the edit succeeds or fails; see the README's Webhooks.",
    )

    @model_validator(mode="after")
    def _model_needs_provider(self) -> EditRequest:
        if self.model and not self.provider:
            raise ValueError("model needs provider: name the provider whose model it is")
        return self

    @field_validator("size")
    @classmethod
    def _size(cls, v: str) -> str:
        if not _SIZE.match(v):
            raise ValueError("size must be 'WxH' (e.g. 1024x1536), 'auto' or 'keep'")
        return v

    @field_validator("aspect")
    @classmethod
    def _aspect(cls, v: str | None) -> str | None:
        if v is not None and not _ASPECT.match(v):
            raise ValueError("aspect must be 'W:H' with whole numbers, e.g. 9:16")
        return v

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, v: str | None) -> str | None:
        if v:
            parse_webhook_url(v)
        return v or None

    def explicit_size(self) -> tuple[int, int] | None:
        if self.size in ("auto", "keep"):
            return None
        w, h = self.size.split("x")
        return int(w), int(h)


class FileRef(BaseModel):
    id: str
    url: str
    width: int
    height: int
    format: str
    sha256: str
    bytes: int


class Provenance(BaseModel):
    """The provider's C2PA content credentials, as they reached this file (see the README's Provenance)."""

    c2pa: Literal["kept", "lost", "absent"] = Field(
        description="kept: the provider's bytes and manifest as it signed them; lost: editgate had to re-encode "
        "(the manifest no longer matches, so it is gone); absent: the provider attached none."
    )
    issuer: str | None = Field(None, description="Who signed the provider's manifest (its certificate's organization).")
    actions: list[str] = Field(default_factory=list, description="The actions the provider's manifest declares.")
    validation: str | None = Field(
        None, description="The C2PA reader's verdict: Valid, Trusted, Invalid; not_checked unless EDITGATE_C2PA_VERIFY."
    )
    editgate_actions: list[str] = Field(
        default_factory=list, description="What editgate changed: composited, cropped, resized, flattened, transcoded."
    )
    editgate_manifest: bool = Field(
        False, description="editgate signed its own manifest (the provider's output as ingredient) into this file."
    )


class OutputImage(FileRef):
    b64_json: str | None = None
    provenance: Provenance | None = None


class Attempt(BaseModel):
    provider: str
    model: str
    outcome: str
    error: str | None = None
    latency_ms: float


class RouteInfo(BaseModel):
    rule: str
    policy_version: str = Field(description="The running policy's own `version` (as in `GET /v1/policy`).")
    policy_digest: str = Field(description="SHA-256 prefix of the policy file's text (`digest` in `GET /v1/policy`).")
    experiment: str | None = None
    arm: str | None = None
    budget: dict[str, Any] | None = None
    candidates: list[str]
    dropped: list[dict[str, Any]] = Field(default_factory=list)
    trace: list[dict[str, Any]] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)
    fallbacks_taken: int = 0


class CostLine(BaseModel):
    """One usage kind priced: ``tokens`` x ``usd_per_million`` / 1,000,000 = ``usd``."""

    kind: str = Field(description="Usage kind, e.g. output_image_tokens, model_input_tokens.")
    tokens: int
    model: str | None = Field(description="Whose price applied (Responses: the mainline or the image model).")
    usd_per_million: float | None = Field(description="Unit price from the price table; null when unpriced.")
    usd: float | None


class Cost(BaseModel):
    estimated_usd: float | None = Field(None, description="Before the call, from the request and the price table.")
    actual_usd: float | None = Field(None, description="From the provider's reported usage; null when unpriced.")
    usage: dict[str, int] = Field(default_factory=dict)
    pricing_version: str | None = Field(None, description="The price table's `version` both numbers were priced at.")
    breakdown: list[CostLine] = Field(
        default_factory=list, description="actual_usd as the sum of these lines: reported tokens x unit price."
    )
    estimate_breakdown: list[CostLine] = Field(
        default_factory=list, description="estimated_usd as the sum of these lines: predicted tokens x unit price."
    )
    max_cost_usd: float | None = Field(None, description="The request's cap, when it set one.")


class Latency(BaseModel):
    total: float
    intake: float
    queueing: float = Field(0.0, description="Waiting for a provider's concurrency limit.")
    provider: float
    normalize: float
    gateway: float = Field(description="total minus provider: what editgate itself added.")


class Drift(BaseModel):
    mean_abs_diff: float = Field(description="Mean absolute difference, 0-255 scale.")
    changed_share: float = Field(description="Share of pixels that changed beyond the threshold.")


class Preservation(Drift):
    region: Literal["outside_mask", "whole_image"]
    mask_locked: bool = False
    before_lock: Drift | None = None


class MaskReport(BaseModel):
    convention: Literal["alpha", "black_white", "outpaint"]
    coverage: float


class Inputs(BaseModel):
    source: FileRef
    mask: FileRef | None = None
    references: list[FileRef] = Field(default_factory=list)
    markup: FileRef | None = Field(None, description="OpenAI's markup overlay, as sent (the drop-in's).")


class Chain(BaseModel):
    continued: bool = Field(description="The provider's own chain was continued (no re-upload).")
    previous_response_id: str | None = None
    note: str | None = Field(None, description="Set when the chain moved to another provider.")


class EditResponse(BaseModel):
    id: str
    status: Literal["succeeded", "failed"]
    created: int
    session_id: str
    version: int
    parent_version: int | None
    expires_at: int | None = Field(None, description="When this session's images and history are deleted.")
    images: list[OutputImage]
    provider: str
    model: str
    route: RouteInfo
    cost: Cost
    latency_ms: Latency
    preservation: Preservation | None = None
    mask: MaskReport | None = None
    inputs: Inputs
    revised_prompt: str | None = Field(None, description="Only where the provider returned one.")
    rendered: dict[str, str] = Field(
        default_factory=dict, description="What the provider reported it did: quality rendered, safety_identifier."
    )
    chain: Chain | None = None
    warnings: list[str] = Field(default_factory=list)
    emulated: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
