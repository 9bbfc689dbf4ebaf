"""From parsed request + raw bytes to a validated edit: images, mask, canvas, prompt and features.

Cheap checks (prompt, n, chips, sizes) come first so a bad request is refused before any decoding.
Runs in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from policies.features import Features
from providers.base import ImageBlob
from providers.imaging import AS_MADE_FORMATS, encode
from providers.openai_models import format_rules, needs
from router.chips import apply_chips, validate_chips
from router.errors import ApiError
from router.intake.features import is_removal, scripts_of, wants_text
from router.intake.images import LoadedImage, decoded_pixels, load_image
from router.intake.masks import EditRegion, Mask, alpha_mask_png, convert_mask
from router.intake.outpaint import build_canvas, size_for_aspect
from router.intake.request import RawInputs
from router.models import EditRequest
from router.settings import Limits
from router.tracing import traced


@dataclass(slots=True)
class PreparedEdit:
    request: EditRequest
    chips: list[str]
    prompt: str
    source: LoadedImage
    """The stored source: oriented, stripped, as uploaded where possible."""
    work: ImageBlob
    """What the provider edits: the source, or the outpaint canvas."""
    mask: Mask | None
    mask_convention: str | None
    references: list[LoadedImage]
    out_size: tuple[int, int] | None
    features: Features
    warnings: list[str] = field(default_factory=list)
    markup: ImageBlob | None = None
    """OpenAI's ``markup`` overlay (checked: PNG with transparency, the source's size), sent as it came."""


def _check_cheap(req: EditRequest, raw: RawInputs, limits: Limits) -> list[str]:
    if len(req.prompt) > limits.max_prompt_chars:
        raise ApiError(
            422,
            "prompt_too_long",
            f"The prompt has {len(req.prompt)} characters; the limit is {limits.max_prompt_chars}.",
            "prompt",
        )
    if req.n > limits.max_n:
        raise ApiError(422, "invalid_parameter", f"n: must be between 1 and {limits.max_n}.", "n")
    if len(raw.references) > limits.max_references:
        raise ApiError(
            422,
            "too_many_references",
            f"{len(raw.references)} reference images sent; the limit is {limits.max_references}.",
            "reference",
        )
    size = req.explicit_size()
    if size:
        check_output_size(size, limits, "size")
    if req.background == "transparent" and req.output_format == "jpeg":
        raise ApiError(422, "invalid_parameter", "JPEG cannot carry transparency; use png or webp.", "background")
    if req.mode == "outpaint":
        if raw.mask is not None:
            raise ApiError(422, "invalid_parameter", "Outpainting builds its own mask; send none.", "mask")
        if (req.aspect is None) == (size is None):
            raise ApiError(
                422,
                "invalid_parameter",
                "Outpainting needs exactly one of 'aspect' or 'size' (WxH).",
                "aspect",
            )
    if req.mode == "variation" and raw.mask is not None:
        raise ApiError(422, "invalid_parameter", "A variation takes no mask.", "mask")
    chips = validate_chips(req.protect)
    if req.output_format in AS_MADE_FORMATS:
        _check_as_made(req, raw, chips)
    return chips


def _check_as_made(req: EditRequest, raw: RawInputs, chips: list[str]) -> None:
    """gif and svg as the API takes them (no mask with gif, one svg, neither streamed or compressed), and what
    editgate cannot do to a result it delivers as made: lock it to the mask."""
    used = {
        **req.provider_params,
        "n": req.n,
        "partial_images": req.partial_images,
        "output_compression": req.output_compression,
        "mask": raw.mask is not None or req.mode == "outpaint",
    }
    if found := format_rules(req.output_format, used):
        param = "partial_images" if found.param == "stream" and req.partial_images else found.param
        raise ApiError(422, "invalid_parameter", found.message, param)
    if "only_mask" in chips:
        fmt = req.output_format.upper()
        raise ApiError(422, "invalid_parameter", f"only_mask locks the result to the mask, which a {fmt} delivered "
                       "as the model made it cannot be; drop only_mask or ask for png, jpeg or webp.",
                       "protect")  # fmt: skip


def check_output_size(size: tuple[int, int], limits: Limits, param: str) -> None:
    """An output or canvas is refused by its size alone, before anything of that size is allocated: a tiny
    upload asking for a huge canvas would otherwise cost as much memory as a huge upload."""
    w, h = size
    if limits.too_large(w, h, limits.max_output_edge):
        raise ApiError(
            422,
            "output_too_large",
            f"{param}: the output would be {w}x{h} ({w * h / 1e6:.1f} megapixels); the limit is "
            f"{limits.max_output_edge} px on the longest edge and {limits.max_megapixels:g} megapixels.",
            param,
        )


def _outpaint(req: EditRequest, source: LoadedImage, limits: Limits) -> tuple[ImageBlob, Mask]:
    w, h = source.blob.width, source.blob.height
    if req.aspect:
        aw, ah = (int(x) for x in req.aspect.split(":"))
        target = size_for_aspect(w, h, aw, ah)
    else:
        target = req.explicit_size() or (w, h)
    check_output_size(target, limits, "aspect" if req.aspect else "size")
    canvas, edit, _ = build_canvas(decoded_pixels(source.blob, "image"), target, req.anchor)
    tw, th = target
    work = ImageBlob(data=encode(canvas, "png"), mime="image/png", width=tw, height=th)
    mask_blob = ImageBlob(data=alpha_mask_png(edit), mime="image/png", width=tw, height=th)
    return work, Mask(blob=mask_blob, convention="alpha", coverage=float(edit.mean()), region=EditRegion.of(edit))


def _markup(data: bytes, work: ImageBlob, has_mask: bool, mode: str, limits: Limits) -> ImageBlob:
    """OpenAI's ``markup``: a transparent PNG of the source's size, drawn on to guide an edit; no mask with it."""
    if has_mask or mode in ("outpaint", "generate"):
        raise ApiError(422, "invalid_parameter", "'markup' cannot be combined with a mask, an outpaint or a "
                       "generation; send the markup alone with the image.", "markup")  # fmt: skip
    loaded = load_image(data, "markup", limits, max_bytes=limits.max_mask_bytes)
    pixels = decoded_pixels(loaded.blob, "markup")
    if loaded.format != "png" or pixels.ndim != 3 or pixels.shape[2] != 4 or not (pixels[..., 3] == 0).any():
        raise ApiError(422, "invalid_parameter", "markup must be a PNG with transparent pixels (the strokes drawn "
                       "on a transparent layer).", "markup")  # fmt: skip
    if (pixels.shape[1], pixels.shape[0]) != (work.width, work.height):
        raise ApiError(422, "invalid_parameter", f"markup is {pixels.shape[1]}x{pixels.shape[0]}; it must match the "
                       f"image's {work.width}x{work.height} (after orientation).", "markup")  # fmt: skip
    loaded.blob.pixels = None
    return loaded.blob


def blank_canvas(req: EditRequest) -> bytes:
    """Generation's starting point: a neutral canvas of the requested size (1024x1024 unless given)."""
    w, h = req.explicit_size() or (1024, 1024)
    return encode(np.full((h, w, 3), 128, np.uint8), "png")


@traced("editgate.intake")
def prepare(req: EditRequest, raw: RawInputs, limits: Limits, tenant: str | None = None) -> PreparedEdit:
    raw.load()
    chips = _check_cheap(req, raw, limits)
    if req.mode == "generate":
        if raw.image or raw.mask is not None:
            raise ApiError(422, "invalid_parameter", "A generation takes no image or mask.", "image")
        raw = RawInputs(image=blank_canvas(req), references=raw.references)
    source = load_image(raw.image, "image", limits)
    refs = [load_image(r, f"reference[{i}]", limits) for i, r in enumerate(raw.references)]
    warnings = list(source.notes)
    if req.output_format in AS_MADE_FORMATS:
        warnings.append(f"output_format={req.output_format} is delivered as the model made it, at the size it made: "
                        "not resized, mask-locked or scored for preservation.")  # fmt: skip
    work = source.blob
    mask: Mask | None = None
    convention: str | None = None
    if req.mode == "outpaint":
        work, mask = _outpaint(req, source, limits)
        convention = "outpaint"
    elif raw.mask is not None:
        loaded = load_image(raw.mask, "mask", limits, max_bytes=limits.max_mask_bytes)
        mask, warning = convert_mask(
            decoded_pixels(loaded.blob, "mask"), req.mask_convention, (work.width, work.height), uploaded=loaded.blob
        )
        if warning:
            warnings.append(warning)
        convention = mask.convention if mask else None
    if req.provider_params.get("markup") and raw.markup is None:  # a re-run from stored inputs: none is stored
        raise ApiError(422, "markup_not_stored", "This edit was sent with a markup image, which editgate does not "
                       "store; send the edit again with its markup.", "markup")  # fmt: skip
    markup = _markup(raw.markup, work, mask is not None, req.mode, limits) if raw.markup is not None else None
    size = req.explicit_size()
    out_size = (work.width, work.height) if req.size == "keep" or (req.mode == "outpaint" and not size) else size
    fw, fh = out_size or (work.width, work.height)
    scripts = scripts_of(req.prompt)
    features = Features(
        has_mask=mask is not None,
        mask_coverage=mask.coverage if mask else 0.0,
        mode=req.mode,
        removal=is_removal(req.prompt),
        tier=req.tier,
        quality=req.quality,
        out_w=fw,
        out_h=fh,
        long_edge=max(fw, fh),
        aspect=round(fw / fh, 4),
        n=req.n,
        n_refs=len(refs),
        text_in_output=req.text_in_output if req.text_in_output is not None else wants_text(req.prompt, scripts),
        scripts=scripts,
        transparent=req.background == "transparent",
        tenant=tenant,
        requested_provider=req.provider,
        requested_model=req.model,
        needs=(
            needed := needs({**req.provider_params, "output_format": req.output_format, "markup": markup is not None})
        ),
        model_specific=bool(needed),
    )
    for blob in (source.blob, work, *(r.blob for r in refs), *([mask.blob] if mask else [])):
        blob.pixels = None  # decoded again on demand, under the decode budget: a queued edit holds no pixels
    return PreparedEdit(
        request=req,
        chips=chips,
        prompt=apply_chips(req.prompt, chips),
        source=source,
        work=work,
        mask=mask,
        mask_convention=convention,
        references=refs,
        out_size=out_size,
        features=features,
        warnings=warnings,
        markup=markup,
    )
