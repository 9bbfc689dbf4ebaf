"""Parse the HTTP body (multipart or JSON) into an :class:`EditRequest` plus raw image bytes.

Only parsing happens here; the bytes are validated by ``intake.prepare`` in a worker thread.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field
from typing import Any, Literal

import pybase64
from litestar import Request
from litestar.datastructures import UploadFile
from pydantic import ValidationError

from router.errors import ApiError
from router.intake import bounded_json
from router.intake.form import read_form
from router.models import EditRequest

_FILE_FIELDS = {"image", "image[]", "mask", "reference", "reference[]", "references", "references[]"}
_LIST_FIELDS = {"protect"}
_JSON_FIELDS = {"metadata", "provider_params"}


@dataclass(slots=True)
class RawInputs:
    """The uploaded bytes. Multipart files stay in their spooled upload files (on disk past 256 KB) until
    :meth:`load` runs in a worker thread, so a request queued for intake holds no image in memory."""

    image: bytes
    mask: bytes | None = None
    references: list[bytes] = field(default_factory=list)
    spooled: list[tuple[Literal["image", "mask", "reference", "markup"], UploadFile]] = field(default_factory=list)
    markup: bytes | None = None
    """A transparent PNG drawn over the source to guide the edit (OpenAI's ``markup``, the drop-in's)."""

    @classmethod
    def from_uploads(
        cls, source: UploadFile | None, mask: UploadFile | None, references: list[UploadFile],
        markup: UploadFile | None = None,
    ) -> RawInputs:  # fmt: skip
        """Uploads still in their spooled files; :meth:`load` reads them."""
        spooled: list[tuple[Literal["image", "mask", "reference", "markup"], UploadFile]] = []
        spooled += [("image", source)] if source is not None else []
        spooled += [("mask", mask)] if mask is not None else []
        spooled += [("markup", markup)] if markup is not None else []
        spooled += [("reference", f) for f in references]
        return cls(image=b"", spooled=spooled)

    @property
    def sent_image(self) -> bool:
        return bool(self.image) or any(role == "image" for role, _ in self.spooled)

    def load(self) -> RawInputs:
        """Read the spooled files into the fields (blocking: call from a worker) and delete them."""
        for role, upload in self.spooled:
            upload.file.seek(0)
            data = upload.file.read()
            upload.file.close()
            if role == "image":
                self.image = data
            elif role == "mask":
                self.mask = data
            elif role == "markup":
                self.markup = data
            else:
                self.references.append(data)
        self.spooled = []
        return self


def validation_error(exc: ValidationError) -> ApiError:
    """The first pydantic error as one actionable message naming the field."""
    err = exc.errors()[0]
    param = ".".join(str(p) for p in err["loc"]) or None
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return ApiError(422, "unknown_parameter", f"Unknown field {param!r}.", param)
    if err["type"] == "missing":
        return ApiError(422, "missing_parameter", f"{param} is required.", param)
    return ApiError(422, "invalid_parameter", f"{param}: {msg}", param)


def parse_fields(fields: dict[str, Any]) -> EditRequest:
    try:
        return EditRequest.model_validate(fields)
    except ValidationError as exc:
        raise validation_error(exc) from exc


def _list_value(values: list[str]) -> list[str]:
    """A list field may be repeated, one JSON array, or comma-separated (for curl users)."""
    out: list[str] = []
    for v in values:
        if not isinstance(v, str):  # a file part where a list of names belongs
            raise ApiError(422, "invalid_parameter", "protect must be a text field, not a file part.", "protect")
        v = v.strip()
        if v.startswith("["):
            parsed = bounded_json.loads(v, "protect")
            if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
                raise ApiError(422, "invalid_parameter", f"Not a JSON array of names: {v[:40]!r}", "protect")
            out += parsed
        else:
            out += [p for p in v.split(",") if p.strip()]
    return out


def _file(value: Any, param: str) -> UploadFile:
    if isinstance(value, UploadFile):
        return value
    raise ApiError(422, "not_a_file", f"{param} must be sent as a file part (curl: -F {param}=@photo.png).", param)


async def parse_multipart(request: Request, image_required: bool = True) -> tuple[EditRequest, RawInputs]:
    form = await read_form(request)
    fields: dict[str, Any] = {}
    images: list[UploadFile] = []
    mask: UploadFile | None = None
    refs: list[UploadFile] = []
    for key in form:
        values = form.getall(key)
        if key in ("image", "image[]"):
            images += [_file(v, "image") for v in values]
        elif key == "mask":
            if len(values) > 1:
                raise ApiError(422, "too_many_masks", "Send at most one mask.", "mask")
            mask = _file(values[0], "mask")
        elif key in _FILE_FIELDS:
            refs += [_file(v, "reference") for v in values]
        elif key in _LIST_FIELDS:
            fields[key] = _list_value(values)
        elif key in _JSON_FIELDS:
            fields[key] = json_object_field(values[-1], key)
        else:
            fields[key] = values[-1]
    req = parse_fields(fields)
    if not images and image_required and req.session_id is None and req.mode != "generate":
        raise ApiError(422, "missing_image", "Send the source photo as the file part 'image'.", "image")
    # Extra images beyond the first are references, as in OpenAI's image[] convention.
    return req, RawInputs.from_uploads(images[0] if images else None, mask, images[1:] + refs)


def decode_b64(value: Any, param: str) -> bytes:
    if not isinstance(value, str):
        raise ApiError(422, "invalid_base64", f"{param} must be a base64 string or data URL.", param)
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        return pybase64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(422, "invalid_base64", f"{param} is not valid base64.", param) from exc


async def read_json_object(request: Request) -> dict[str, Any]:
    body = bounded_json.loads(await request.body())
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The body must be a JSON object.")
    return body


def json_object_field(value: Any, param: str) -> dict[str, Any]:
    """A field that must hold a JSON object, given as one (JSON body) or as its text (form field)."""
    if isinstance(value, str):
        value = bounded_json.loads(value, param)
    if not isinstance(value, dict):
        raise ApiError(422, "invalid_parameter", f"{param} must be a JSON object.", param)
    return value


async def parse_json(request: Request, image_required: bool = True) -> tuple[EditRequest, RawInputs]:
    body = await read_json_object(request)
    if "image" not in body and image_required and body.get("session_id") is None and body.get("mode") != "generate":
        raise ApiError(422, "missing_image", "Send the source photo as base64 in 'image'.", "image")
    image = decode_b64(body.pop("image"), "image") if "image" in body else b""
    mask = decode_b64(body.pop("mask"), "mask") if body.get("mask") is not None else body.pop("mask", None)
    refs_raw = body.pop("references", []) or []
    if not isinstance(refs_raw, list):
        raise ApiError(422, "invalid_parameter", "references must be a list of base64 images.", "references")
    refs = [decode_b64(r, f"references.{i}") for i, r in enumerate(refs_raw)]
    return parse_fields(body), RawInputs(image=image, mask=mask, references=refs)


async def parse_edit_request(request: Request, image_required: bool = True) -> tuple[EditRequest, RawInputs]:
    """Parse an edit; without ``image_required`` (session edits) the source comes from a stored version."""
    ctype = request.content_type[0]
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await parse_multipart(request, image_required)
    if ctype == "application/json":
        return await parse_json(request, image_required)
    raise ApiError(
        415,
        "unsupported_content_type",
        f"Send multipart/form-data (or url-encoded fields) or application/json, not {ctype or 'no content type'}.",
    )
