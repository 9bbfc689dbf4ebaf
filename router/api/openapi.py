"""The request body of ``POST /v1/edits`` for the OpenAPI schema, in both accepted encodings.

The handler parses the body itself (it accepts multipart and JSON on one route), so Litestar cannot
infer it; this declares it from :class:`EditRequest`'s own JSON schema so the two never drift apart.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody

from router.models import EditRequest


def _body_schema(files: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(EditRequest.model_json_schema())
    schema.pop("title", None)
    schema["properties"] = {**files, **schema["properties"]}
    schema["required"] = ["image", *schema.get("required", [])]
    return schema


_BINARY = {"type": "string", "format": "binary"}
_BASE64 = {"type": "string", "description": "base64 or a data: URL"}
MULTIPART = _body_schema(
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
JSON = _body_schema({"image": _BASE64, "mask": _BASE64, "references": {"type": "array", "items": _BASE64}})


@dataclass
class EditOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            content={
                "multipart/form-data": OpenAPIMediaType(schema=MULTIPART),  # type: ignore[arg-type]
                "application/json": OpenAPIMediaType(schema=JSON),  # type: ignore[arg-type]
            },
        )
