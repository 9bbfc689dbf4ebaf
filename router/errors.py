"""One error shape for every failure: ``{"error": {"code", "message", "param"}}``.

Intake, routing and execution raise :class:`ApiError`; the handlers here turn it, Litestar's own
exceptions and anything unexpected into that shape, so a caller never has to parse two formats.
"""

from __future__ import annotations

import math
import re
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from router.storage.store import SessionGone

log = structlog.get_logger("editgate.errors")


class ApiError(Exception):
    """A failure the caller can act on; ``code`` is stable, ``message`` says what to fix."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "param": self.param, **self.extra}}


OPENAI_PATHS = "/v1/images/"
_OPENAI_STATUS = {413: 400, 415: 400, 422: 400, 402: 429}
"""OpenAI answers validation problems with 400 and quota problems with 429; its SDK picks its exception by status."""


def error_response(exc: ApiError, openai_shape: bool = False) -> Response[dict[str, Any]]:
    """The error in editgate's shape, or OpenAI's on the drop-in; a failed edit's id rides along in both
    (``edit_id`` and ``x-editgate-edit-id``) so the caller can find its stored inputs."""
    headers: dict[str, str] = {}
    if (retry_after := exc.extra.get("retry_after")) is not None:
        headers["Retry-After"] = str(math.ceil(retry_after))
    if edit_id := exc.extra.get("edit_id"):
        headers["x-editgate-edit-id"] = str(edit_id)
    if not openai_shape:
        return Response(exc.body(), status_code=exc.status, headers=headers)
    # the caller's own max_cost_usd is a request to change, not an exhausted quota the SDK would retry
    capped = exc.code == "cost_cap_exceeded"
    status = 400 if capped else _OPENAI_STATUS.get(exc.status, exc.status)
    code = "insufficient_quota" if exc.status == 402 and not capped else exc.code
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": exc.message, "type": kind, "param": exc.param, "code": code}}
    if edit_id:
        body["error"]["edit_id"] = edit_id
    return Response(body, status_code=status, headers=headers)


def _openai(request: Request) -> bool:
    return request.url.path.startswith(OPENAI_PATHS)


def _api_error_handler(request: Request, exc: ApiError) -> Response[dict[str, Any]]:
    return error_response(exc, _openai(request))


_LITESTAR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


_MISSING = re.compile(r"Missing required (\w+) parameter '([^']+)'")


def validation_error(exc: ValidationException) -> ApiError:
    """Litestar's request validation in editgate's shape: ``invalid_parameter`` naming the field.

    Litestar reports a failed signature (a body model, a query, path or header parameter) as a list of
    ``{"message", "key"}``, its pydantic DTOs as pydantic's ``{"loc", "msg"}``, and a missing parameter
    only in its detail text. ``param`` is the first field at fault; the message lists every problem
    (never the input itself, which may be a prompt). The status stays Litestar's 400, as documented.
    """
    fields: list[str] = []
    problems: list[str] = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        key = item.get("key") or ".".join(str(p) for p in item.get("loc", ()))
        text = str(item.get("message") or item.get("msg") or "invalid").removeprefix("Value error, ")
        if key:
            fields.append(key)
        problems.append(f"{key}: {text}" if key else text)
    if not problems and (missing := _MISSING.search(str(exc.detail))):
        fields.append(missing.group(2))
        problems.append(f"missing required {missing.group(1)} parameter {missing.group(2)!r}")
    message = "; ".join(problems) or str(exc.detail)
    return ApiError(400, "invalid_parameter", f"Invalid request: {message}.", fields[0] if fields else None)


def _http_exception_handler(request: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    if isinstance(exc, ValidationException):
        return error_response(validation_error(exc), _openai(request))
    status = exc.status_code
    code = _LITESTAR_CODES.get(status, "http_error")
    message = exc.detail
    if status == 413:
        message = "The request body is larger than this service accepts (see limits in the README)."
    elif isinstance(exc, NotFoundException):
        message = "No such resource."
    return error_response(ApiError(status, code, str(message)), _openai(request))


def _unexpected_handler(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
    error = ApiError(HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "An unexpected error occurred.")
    return error_response(error, _openai(request))


def _session_gone_handler(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    message = "The session was deleted or expired while this request was using it."
    return error_response(ApiError(404, "not_found", message, "session_id"), _openai(request))


EXCEPTION_HANDLERS = {
    ApiError: _api_error_handler,
    SessionGone: _session_gone_handler,
    HTTPException: _http_exception_handler,
    Exception: _unexpected_handler,
}
