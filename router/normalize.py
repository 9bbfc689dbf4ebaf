"""Bring a provider's result back to what the caller asked for, and measure what it changed.

Order matters: the result is aligned to the source, scored, optionally mask-locked (at the source's
resolution, so the lock is exact), then resized and encoded. Bytes pass through untouched when the
result already has the requested size and format and nothing was composited.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from dataclasses import dataclass
from xml.etree.ElementTree import ParseError

import cv2
import numpy as np
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as defused_et
from PIL import Image, ImageSequence

from providers.base import ImageBlob, ResultImage
from providers.decode_budget import DECODE_BUDGET
from providers.imaging import FORMAT_OF_MIME, MIME, AsMadeFormat, Format, OutputFormat, decode, encode
from router.intake.images import decoded_pixels
from router.intake.metadata import StripError
from router.intake.sniff import SNIFF_BYTES, stored_format
from router.models import Drift, Preservation, Provenance
from router.provenance import C2paConfig, after_reencode, changes, keep_or_strip, passed_through, read_manifest

CHANGE_THRESHOLD = 8
"""A pixel 'changed' when any channel moved by more than this (0-255): above JPEG-level noise."""


@dataclass(slots=True)
class NormalizedImage:
    data: bytes
    format: OutputFormat
    width: int
    height: int
    sha256: str
    provenance: Provenance | None = None


def _resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    if (pixels.shape[1], pixels.shape[0]) == (w, h):
        return pixels
    shrinking = w * h < pixels.shape[0] * pixels.shape[1]
    return cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def fit(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale to cover ``size`` and centre-crop, so a different aspect is never stretched."""
    w, h = size
    ph, pw = pixels.shape[:2]
    if abs(pw / ph - w / h) < 0.01:
        return _resize(pixels, size)
    scale = max(w / pw, h / ph)
    sw, sh = max(w, round(pw * scale)), max(h, round(ph * scale))
    scaled = _resize(pixels, (sw, sh))
    x, y = (sw - w) // 2, (sh - h) // 2
    return scaled[y : y + h, x : x + w]


SCORE_EDGE = 512
"""Drift is measured on copies with this long edge: a 1024x1024 score costs ~2 ms instead of ~30 ms, and the
mean difference agrees with the full-resolution one to a few hundredths (see the benchmark's micro-figures)."""


def _shrink(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(np.ascontiguousarray(a), size, interpolation=cv2.INTER_AREA)


def drift(result: np.ndarray, source: np.ndarray, keep: np.ndarray | None) -> Drift:
    """How much ``result`` differs from ``source`` over ``keep`` (True = should be unchanged).

    Large images are compared at SCORE_EDGE; a reduced pixel counts as "kept" only when its whole footprint
    is, so a mask-locked result still scores exactly zero."""
    h, w = source.shape[:2]
    result, source = result[..., :3], source[..., :3]
    if max(h, w) > SCORE_EDGE:
        scale = SCORE_EDGE / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        result, source = _shrink(result, size), _shrink(source, size)
        if keep is not None:
            keep = _shrink(keep.astype(np.float32), size) >= 0.999
    d = cv2.absdiff(result, source)
    diff = np.maximum(np.maximum(d[..., 0], d[..., 1]), d[..., 2])
    if keep is not None:
        diff = diff[keep]
    if diff.size == 0:
        return Drift(mean_abs_diff=0.0, changed_share=0.0)
    return Drift(
        mean_abs_diff=round(float(diff.mean()), 4),
        changed_share=round(float((diff > CHANGE_THRESHOLD).mean()), 6),
    )


Window = tuple[slice, slice]


def lock_window(edit: np.ndarray, feather_px: int) -> Window | None:
    """The mask's bounding box grown by a margin the feather's distances cannot reach past: the only pixels a
    lock can change, and (with the margin, all outside the mask) a frame whose distance transform equals the
    whole image's inside the feather band. None when nothing is to be edited."""
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(edit).view(np.uint8))
    if w == 0 or h == 0:
        return None
    margin = 2 * max(feather_px, 1) + 2  # chamfer distances are >= 0.95 x Euclidean: 2x is ample
    height, width = edit.shape
    return slice(max(y - margin, 0), min(y + h + margin, height)), slice(max(x - margin, 0), min(x + w + margin, width))


def mask_lock(result: np.ndarray, source: np.ndarray, edit: np.ndarray, feather_px: int) -> np.ndarray:
    """Paste the source back outside ``edit``; the feather ramps inward, so outside stays exact.

    The output starts as a copy of the source; only the window around the mask (its bounding box plus the
    feather's margin) is composited, so a small mask on a large image costs a copy and a small blend."""
    return _lock(result, source, edit, feather_px, lock_window(edit, feather_px))


def _lock(result: np.ndarray, source: np.ndarray, edit: np.ndarray, feather_px: int, window: Window | None
          ) -> np.ndarray:  # fmt: skip
    channels = min(result.shape[2], source.shape[2])
    colour = source[..., :channels].copy()  # contiguous, and never the caller's array
    if window is not None:
        colour[window] = _blend(result[window][..., :channels], colour[window], edit[window], feather_px)
    return colour if channels == result.shape[2] else np.dstack([colour, result[..., channels:]])


def _blend(result: np.ndarray, source: np.ndarray, edit: np.ndarray, feather_px: int) -> np.ndarray:
    """Within one window: the result inside ``edit``, blended towards the source over the feather band only
    (edit pixels closer than ``feather_px`` to the edge), the source elsewhere."""
    feather = max(feather_px, 1)
    result, source, edit = np.ascontiguousarray(result), np.ascontiguousarray(source), np.ascontiguousarray(edit)
    out = source.copy()
    cv2.copyTo(result, edit.view(np.uint8), out)  # in place
    distance = cv2.distanceTransform(edit.view(np.uint8), cv2.DIST_L2, 3)
    band = np.flatnonzero(edit & (distance < feather))  # flat indices: one scan of the mask, not three
    if band.size:
        channels = out.shape[2]
        weight = (distance.reshape(-1)[band] / feather)[:, None]
        mixed = result.reshape(-1, channels)[band] * weight
        mixed += source.reshape(-1, channels)[band] * (1.0 - weight)
        out.reshape(-1, channels)[band] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
    return out


def _locked_drift(locked: np.ndarray, source: np.ndarray, edit: np.ndarray, window: Window | None) -> Drift:
    """Drift outside the mask after a lock, measured at full resolution where the lock wrote (the window) and
    counted over the whole outside: every pixel beyond the window is a copy of the source."""
    outside = edit.size - int(np.count_nonzero(edit))
    if outside == 0:
        return Drift(mean_abs_diff=0.0, changed_share=0.0)
    ys, xs = window if window is not None else (slice(None), slice(None))
    d = cv2.absdiff(np.ascontiguousarray(locked[ys, xs, :3]), np.ascontiguousarray(source[ys, xs, :3]))
    diff = np.maximum(np.maximum(d[..., 0], d[..., 1]), d[..., 2])[~edit[ys, xs]]
    return Drift(
        mean_abs_diff=round(float(diff.sum(dtype=np.int64)) / outside, 4),
        changed_share=round(int(np.count_nonzero(diff > CHANGE_THRESHOLD)) / outside, 6),
    )


def _header_size(data: bytes) -> tuple[int, int] | None:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:
        return None


def normalize(
    image: ResultImage,
    *,
    source: ImageBlob,
    edit: np.ndarray | None,
    lock: bool,
    score: bool,
    out_size: tuple[int, int] | None,
    fmt: Format,
    quality: int | None,
    opaque: bool,
    feather_px: int,
    c2pa: C2paConfig | None = None,
) -> tuple[NormalizedImage, Preservation | None]:
    """Size, format, lock and score the result. With nothing to composite or measure, the provider's bytes
    pass through at the container level: no decode, no encode (and its C2PA manifest, if any, is kept).
    ``c2pa``: whether to verify the provider's manifest, and editgate's own signer for results it had to
    re-encode (see :mod:`router.provenance`)."""
    c2pa = c2pa or C2paConfig()
    manifest = read_manifest(image.data, image.mime, c2pa.verify)
    if not (lock or score or opaque) and FORMAT_OF_MIME.get(image.mime) == fmt and image.pixels is None:
        size = _header_size(image.data)
        if size is not None and out_size in (None, size):
            try:
                data = keep_or_strip(image.data, fmt, manifest)
            except StripError:
                data = None
            if data is not None:
                sha = hashlib.sha256(data).hexdigest()
                kept = passed_through(manifest)
                return NormalizedImage(data=data, format=fmt, width=size[0], height=size[1], sha256=sha,
                                       provenance=kept), None  # fmt: skip
    provided = image.pixels if image.pixels is not None else decode(image.data)
    source_px = decoded_pixels(source, "image")
    src_size = (source_px.shape[1], source_px.shape[0])
    keep = None if edit is None else ~edit
    locked = lock and edit is not None
    measure = score or locked
    aligned = fit(provided, src_size) if measure else provided
    before = drift(aligned, source_px, keep) if measure else None
    pixels = provided
    after = before
    if locked:
        assert edit is not None
        window = lock_window(edit, feather_px)
        pixels = _lock(aligned, source_px, edit, feather_px, window)
        after = _locked_drift(pixels, source_px, edit, window)
    final = fit(pixels, out_size or (pixels.shape[1], pixels.shape[0]))
    flatten = (opaque or fmt == "jpeg") and final.shape[2] == 4 and int(final[..., 3].min()) < 255
    if flatten:
        alpha = final[..., 3:4].astype(np.float32) / 255.0
        final = np.clip(final[..., :3] * alpha + 255.0 * (1 - alpha) + 0.5, 0, 255).astype(np.uint8)
    data = None
    if final is provided and FORMAT_OF_MIME.get(image.mime) == fmt:
        try:
            data = keep_or_strip(image.data, fmt, manifest)  # pass-through: no re-encode
        except StripError:
            data = None
    provenance = passed_through(manifest)
    if data is None:
        data = encode(np.ascontiguousarray(final), fmt, quality)
        (ph, pw), (fh, fw) = provided.shape[:2], final.shape[:2]
        done = changes(resized=(pw, ph) != (fw, fh), cropped=abs(pw / ph - fw / fh) >= 0.01, composited=locked,
                       flattened=flatten, transcoded=FORMAT_OF_MIME.get(image.mime) != fmt)  # fmt: skip
        data, provenance = after_reencode(manifest, (image.data, image.mime), data, fmt, done, c2pa.signer)
    preservation = None
    if measure and before is not None and after is not None:
        preservation = Preservation(
            mean_abs_diff=after.mean_abs_diff,
            changed_share=after.changed_share,
            region="whole_image" if edit is None else "outside_mask",
            mask_locked=locked,
            before_lock=before if locked else None,
        )
    out = NormalizedImage(data=data, format=fmt, width=final.shape[1], height=final.shape[0],
                          sha256=hashlib.sha256(data).hexdigest(), provenance=provenance)  # fmt: skip
    return out, preservation


MAX_AS_MADE_EDGE = 16384
"""The largest width or height an as-made result may claim (the models make at most 3840)."""
_SVG_ROOT = "{http://www.w3.org/2000/svg}svg"
_LENGTH = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:px)?\s*")


def as_made(image: ResultImage, fmt: AsMadeFormat) -> NormalizedImage:
    """A gif or svg result as the model made it: checked to be what was asked for and sized, never resized or
    re-encoded (an animation or a vector document cannot be resized, locked or scored as a raster is).
    Raises ValueError for bytes that are not a GIF whose every frame decodes, or not a plain SVG document:
    well-formed, with no DTD (so no entity expansion or external reference), an ``<svg>`` root and a size
    between 1 and :data:`MAX_AS_MADE_EDGE`, recognisable from its first bytes as an SVG (so it is served as
    one, under its sandboxing policy)."""
    if stored_format(image.data[:SNIFF_BYTES]) != fmt:
        raise ValueError(f"the bytes do not begin as a {fmt}")
    width, height = _gif_size(image.data) if fmt == "gif" else _svg_size(image.data)
    sha = hashlib.sha256(image.data).hexdigest()
    return NormalizedImage(data=image.data, format=fmt, width=width, height=height, sha256=sha)


def _within_bounds(width: float, height: float, fmt: str) -> tuple[int, int]:
    if not (math.isfinite(width) and math.isfinite(height)):
        raise ValueError(f"the {fmt} claims a size of {width}x{height}")
    w, h = round(width), round(height)
    if not (0 < w <= MAX_AS_MADE_EDGE and 0 < h <= MAX_AS_MADE_EDGE):
        raise ValueError(f"the {fmt} claims a size of {w}x{h}")
    return w, h


def _gif_size(data: bytes) -> tuple[int, int]:
    """The size from the header, bounded before any frame decodes; then every frame, under the decode budget
    (a cut or damaged frame fails here, whatever Pillow's own exception)."""
    try:
        with Image.open(io.BytesIO(data), formats=["GIF"]) as img:
            size = _within_bounds(*img.size, "gif")
            with DECODE_BUDGET.hold(*size):
                for frame in ImageSequence.Iterator(img):
                    frame.load()
            return size
    except ValueError:
        raise
    except Exception as exc:  # Pillow's GIF reader raises many kinds on damaged bytes
        raise ValueError(f"an unreadable GIF ({type(exc).__name__})") from None


def _svg_size(data: bytes) -> tuple[int, int]:
    try:
        root = defused_et.fromstring(data, forbid_dtd=True)
    except (DefusedXmlException, ParseError) as exc:
        raise ValueError(f"not a plain SVG document ({type(exc).__name__})") from None
    if root.tag != _SVG_ROOT:
        raise ValueError(f"the document's root is {root.tag!r}, not an SVG element")
    width, height = (_LENGTH.fullmatch(root.get(name) or "") for name in ("width", "height"))
    if width and height:
        return _within_bounds(float(width[1]), float(height[1]), "svg")
    box = (root.get("viewBox") or "").replace(",", " ").split()
    try:
        if len(box) == 4:
            return _within_bounds(float(box[2]), float(box[3]), "svg")
    except ValueError as exc:
        raise ValueError(f"the SVG's viewBox is not four numbers ({exc})") from None
    raise ValueError("the SVG states no size (width and height, or a viewBox)")


def score(image: ResultImage, *, source: ImageBlob, edit: np.ndarray | None) -> Preservation:
    """The preservation score of an unlocked result on its own, for when it runs after the answer: the
    provider's image aligned to the source and measured, exactly as :func:`normalize` measures it."""
    provided = image.pixels if image.pixels is not None else decode(image.data)
    source_px = decoded_pixels(source, "image")
    aligned = fit(provided, (source_px.shape[1], source_px.shape[0]))
    d = drift(aligned, source_px, None if edit is None else ~edit)
    return Preservation(
        mean_abs_diff=d.mean_abs_diff,
        changed_share=d.changed_share,
        region="whole_image" if edit is None else "outside_mask",
    )


__all__ = ["MIME", "NormalizedImage", "as_made", "drift", "fit", "lock_window", "mask_lock", "normalize", "score"]
