"""What the OpenAPI document cannot infer from the handlers: request bodies, errors and who may call.

Handlers that parse their body themselves (``POST /v1/edits`` takes multipart and JSON on one route,
the OpenAI drop-in takes what the SDK sends) declare it through an :class:`~litestar.openapi.spec.Operation`
subclass whose schema comes from :class:`EditRequest`'s own JSON schema, so the two never drift apart.
Every tenant operation declares, with :func:`guarded`, the bearer key it needs and each error status it
can answer with, in the body it really has (``{"error": {"code", "message", "param"}}``, or OpenAI's
error JSON on ``/v1/images/*``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Components, OpenAPIMediaType, Operation, RequestBody, SecurityScheme
from pydantic import BaseModel, ConfigDict, Field

from router.models import EditRequest

# -- who may call ---------------------------------------------------------------------------------

BEARER = [{"bearer": []}]
COMPONENTS = Components(
    security_schemes={
        "bearer": SecurityScheme(
            type="http",
            scheme="bearer",
            description="An editgate API key (`editgate keys create`), sent as `Authorization: Bearer KEY`. "
            "Until the first key exists, calls without one run as the development tenant `dev`.",
        )
    }
)

# -- errors ---------------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(description="Stable, machine-readable reason, such as `invalid_parameter`.")
    message: str = Field(description="What went wrong and what to change.")
    param: str | None = Field(description="The request field at fault, when there is one.")
    edit_id: str | None = Field(None, description="When an edit was started: its id (`GET /v1/edits/{id}`).")
    session_id: str | None = Field(None, description="When an edit was started: its session.")
    version: int | None = Field(None, description="When an edit was started: its version in the session.")
    provider: str | None = Field(None, description="When a provider failed: which one.")
    provider_request_id: str | None = Field(None, description="The provider's id for the failed call.")
    retry_after: float | None = Field(None, description="Seconds to wait (also in the `Retry-After` header).")


class Error(BaseModel):
    """Every failure on editgate's own API."""

    error: ErrorDetail


class OpenAIErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(description="Stable reason; `insufficient_quota` when a budget is spent.")
    message: str = Field(description="What went wrong and what to change.")
    param: str | None = Field(description="The request field at fault, when there is one.")
    type: Literal["invalid_request_error", "server_error"]
    edit_id: str | None = Field(None, description="When an edit was started: its id (`GET /v1/edits/{id}`).")


class OpenAIError(BaseModel):
    """A failure on the OpenAI-compatible API, in OpenAI's error JSON (the SDK raises by status)."""

    error: OpenAIErrorDetail


_WHY = {
    400: "The request is malformed: a body that is not JSON or multipart, or a path or query value of the wrong type.",
    401: "No valid API key: send `Authorization: Bearer KEY`.",
    402: "The tenant's daily budget would be exceeded (`budget_exceeded`), or the request's `max_cost_usd` is below "
    "the estimate (`cost_cap_exceeded`; nothing was sent to a provider).",
    403: "The key is valid but lacks the admin scope this needs.",
    404: "No such edit, session, version, file or experiment for this tenant.",
    408: "The request body did not arrive within the body-read deadline.",
    409: "The `Idempotency-Key` was used with a different request or its first request is still running; "
    "or (retry) the version has not failed.",
    413: "The request or one of its images exceeds a limit (bytes or megapixels).",
    415: "The body is neither `multipart/form-data` nor `application/json`.",
    422: "A field or an image is invalid (`param` names it), or the provider refused the request.",
    429: "The provider is rate-limiting; retry after `Retry-After` seconds.",
    500: "An unexpected failure inside the gateway; the edit's inputs are kept.",
    502: "The provider failed or returned an unusable image.",
    503: "No provider can take the request now (circuit breakers open, or none configured).",
    504: "No provider finished before the deadline.",
}
_WHY_OPENAI = {
    400: "The request is invalid (OpenAI answers every validation problem, size limit included, with 400).",
    429: "A budget is spent (`insufficient_quota`) or the provider is rate-limiting (`Retry-After`).",
}


def guarded(*statuses: int, openai: bool = False) -> dict[str, Any]:
    """Decorator arguments for an operation that needs the bearer key and fails with these statuses.

    400 (Litestar validates every parameter), 401 and 500 are always possible and always listed;
    ``openai=True`` documents OpenAI's error JSON.
    """
    container = OpenAIError if openai else Error
    why = {**_WHY, **_WHY_OPENAI} if openai else _WHY
    codes = sorted({400, 401, 500, *statuses})
    responses = {s: ResponseSpec(container, description=why[s], generate_examples=False) for s in codes}
    return {"security": BEARER, "responses": responses}


EDIT_ERRORS = (402, 404, 408, 409, 413, 415, 422, 429, 502, 503, 504)
"""What running an edit can answer with: intake, budget, idempotency and every provider outcome."""
OPENAI_ERRORS = (404, 408, 409, 429, 502, 503, 504)
"""The same failures as OpenAI reports them (413/415/422 become 400, 402 becomes 429; cost_cap_exceeded: 400)."""

# -- request bodies -------------------------------------------------------------------------------

_EDIT_FIELDS: dict[str, Any] = EditRequest.model_json_schema()["properties"]
_BINARY = {"type": "string", "format": "binary"}
_BASE64 = {"type": "string", "description": "base64 or a data: URL"}


def _edit_body(files: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(EditRequest.model_json_schema())
    schema.pop("title", None)
    schema["properties"] = {**files, **schema["properties"]}
    schema["required"] = ["image", *schema.get("required", [])]
    return schema


MULTIPART = _edit_body(
    {
        "image": {**_BINARY, "description": "The source photo (PNG, JPEG or WebP)."},
        "mask": {**_BINARY, "description": "Optional: alpha 0 = edit, or black/white with white = edit."},
        "reference": {
            "type": "array",
            "items": _BINARY,
            "description": "Reference images (repeat the part).",
        },
    }
)
JSON = _edit_body({"image": _BASE64, "mask": _BASE64, "references": {"type": "array", "items": _BASE64}})

_IGNORED = "Accepted for compatibility with OpenAI's SDK; editgate ignores it."
_NEWER = "Sent to a model that takes it (the newer GPT Image models); refused by name with any other model"
_OPENAI_FIELDS: dict[str, dict[str, Any]] = {
    "prompt": {"type": "string", "minLength": 1, "description": "What to change (or, for a generation, to draw)."},
    "model": {
        "type": "string",
        "default": "editgate-auto",
        "description": "A provider's model name pins that provider (a GPT Image model id of the catalog, such as "
        "`gpt-image-2.5-flare`, pins that model on openai-images); a policy alias (`editgate-auto`, "
        "`editgate-standard`, `editgate-pro`) lets the routing policy decide. `GET /v1/policy` lists both.",
    },
    "n": _EDIT_FIELDS["n"],
    "size": {"type": "string", "default": "auto", "description": "'WxH' or 'auto' (as the provider returns it)."},
    "quality": {
        "type": "string",
        "enum": ["low", "medium", "high", "xhigh", "max", "auto", "standard", "hd"],
        "description": "Sent to an OpenAI model as it came (xhigh and max only to a model that takes them); the "
        "answer's `quality` is what the provider rendered. low and medium route as editgate's `draft`.",
    },
    "background": _EDIT_FIELDS["background"],
    "output_format": _EDIT_FIELDS["output_format"],
    "output_compression": _EDIT_FIELDS["output_compression"],
    "response_format": {
        "type": "string",
        "enum": ["b64_json", "url"],
        "default": "b64_json",
        "description": "`url` answers with editgate's `/v1/files/{id}` links instead of base64.",
    },
    "stream": {
        "type": "boolean",
        "default": False,
        "description": "true: answer `text/event-stream` with the "
        "SDK's stream events (partial images, then the completed, normalized image with its usage).",
    },
    "user": {"type": "string", "description": "Sent to OpenAI models; stored in the edit's `metadata.user`."},
    "input_fidelity": {"type": "string", "enum": ["high", "low"], "description": "Sent to a model that takes it."},
    "moderation": {"type": "string", "enum": ["auto", "low"], "description": "Sent to OpenAI generations."},
    "safety_identifier": {
        "type": "string",
        "description": "Sent to OpenAI models and echoed; without it (and without `user`) editgate sends one per "
        "tenant, so one tenant's abuse does not flag the whole account.",
    },
    "complexity": {"type": "string", "enum": ["low", "medium", "high"], "description": _NEWER},
    "frame_count": {"type": "integer", "minimum": 2, "maximum": 16, "description": _NEWER + " (gif output)"},
    "frame_duration_ms": {"type": "integer", "minimum": 1, "description": _NEWER + " (gif output)"},
    "svg": {"type": "object", "description": _NEWER + " (svg output)"},
    "partial_images": {
        "type": "integer",
        "minimum": 0,
        "maximum": 3,
        "default": 0,
        "description": "Previews to stream before the final image (with `stream=true`).",
    },
    "style": {"type": "string", "enum": ["vivid", "natural"], "description": _IGNORED},
}
_DROP_IN_FILES = {
    "image": {**_BINARY, "description": "The source photo (PNG, JPEG or WebP). Several: repeat `image[]`, the "
              "first is the source and the rest are references. With `session_id`, the session's version is "
              "the source and this part is ignored."},
    "image[]": {"type": "array", "items": _BINARY, "description": "The SDK's form for several images."},
    "mask": {**_BINARY, "description": "OpenAI's convention: alpha 0 marks what to edit."},
    "markup": {**_BINARY, "description": "A transparent PNG of the image's size drawn on to guide the edit: sent to "
               "a model that takes it (GPT Image 2.5), refused by name otherwise; not with `mask`."},
}  # fmt: skip


def drop_in_schema(fields: Iterable[str], files: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body of an OpenAI-compatible request: OpenAI's fields, then editgate's extras (``extra_body``).

    ``fields`` are the names the handler accepts; naming one that has no schema here fails at import.
    """
    names = set(fields)
    properties = {n: copy.deepcopy(_OPENAI_FIELDS[n]) for n in _OPENAI_FIELDS if n in names}
    properties |= {n: copy.deepcopy(_EDIT_FIELDS[n]) for n in sorted(names - set(_OPENAI_FIELDS))}
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "required": ["prompt"]}
    if files:
        schema["required"] = ["image", "prompt"]
        properties = {**files, **properties}
    return {**schema, "properties": properties}


def drop_in_edit_schema(fields: Iterable[str]) -> dict[str, Any]:
    return drop_in_schema(fields, _DROP_IN_FILES)


def body_operation(content: dict[str, dict[str, Any]]) -> type[Operation]:
    """An Operation class that documents ``content`` (media type -> JSON schema) as the request body."""

    @dataclass
    class BodyOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                required=True,
                content={media: OpenAPIMediaType(schema=schema) for media, schema in content.items()},  # type: ignore[misc]
            )

    return BodyOperation


EditOperation = body_operation({"multipart/form-data": MULTIPART, "application/json": JSON})
