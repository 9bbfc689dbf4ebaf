"""Validate and normalize one uploaded image: limits before decoding, orientation, colour, metadata.

Runs in a worker thread (it decodes). Every failure is an :class:`ApiError` naming the form field,
so a caller learns which upload to fix and how.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageCms, ImageOps

from providers.base import ImageBlob
from providers.decode_budget import DECODE_BUDGET
from providers.imaging import MIME, DecodeError, encode
from router.errors import ApiError
from router.intake.metadata import StripError, strip_metadata
from router.intake.sniff import ACCEPTED, sniff
from router.intake.structure import container_sound
from router.settings import Limits

_PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
_SRGB = ImageCms.createProfile("sRGB")


@dataclass(slots=True)
class LoadedImage:
    blob: ImageBlob
    format: str
    reencoded: bool
    orientation_applied: int = 1
    converted_from: str | None = None
    notes: list[str] = field(default_factory=list)


def _open(data: bytes, fmt: str, param: str, limits: Limits) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[fmt]])
    except Image.DecompressionBombError as exc:
        raise ApiError(422, "image_too_large", f"{param}: {exc}", param) from exc
    except Exception as exc:  # untrusted input: any decoder failure is the file's fault
        raise ApiError(
            422, "invalid_image", f"{param} looks like {fmt.upper()} but its header cannot be read.", param
        ) from exc
    w, h = img.size
    if w <= 0 or h <= 0:
        raise ApiError(422, "invalid_image", f"{param} has no pixels ({w}x{h}).", param)
    if limits.too_large(w, h, limits.max_edge):
        raise ApiError(
            422,
            "image_too_large",
            f"{param} is {w}x{h}; the limit is {limits.max_edge} px on the longest edge and "
            f"{limits.max_megapixels:g} megapixels. Downscale it before uploading.",
            param,
        )
    return img


def _decode(img: Image.Image, fmt: str, param: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except Exception as exc:  # truncated streams, bad CRCs, zlib errors...
        raise ApiError(
            422, "invalid_image", f"{param} is a damaged or truncated {fmt.upper()} file ({exc}).", param
        ) from exc
    return img


def _to_rgb(img: Image.Image) -> tuple[Image.Image, str | None]:
    """Bring any colour mode to RGB or RGBA; returns the original mode when it changed."""
    mode = img.mode
    if mode in ("RGB", "RGBA"):
        return img, None
    has_alpha = "A" in img.getbands() or "transparency" in img.info
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB"), mode
    return img.convert("RGBA" if has_alpha else "RGB"), mode


def _to_srgb(img: Image.Image, icc: bytes | None) -> tuple[Image.Image, bool]:
    """Convert from an embedded non-sRGB profile so the profile can be dropped without a colour shift."""
    if not icc:
        return img, False
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(profile).lower():
            return img, False
        out_mode = img.mode
        converted = ImageCms.profileToProfile(img, profile, _SRGB, outputMode=out_mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return img, False  # unreadable profile: keep pixels as they are, the profile is dropped anyway
    return (converted or img), True


def _is_srgb(icc: bytes) -> bool:
    try:
        return "srgb" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).lower()
    except (ImageCms.PyCMSError, OSError, ValueError):
        return True  # unreadable: nothing to convert from; the profile is dropped with the metadata


def _orientation(img: Image.Image, data: bytes, fmt: str) -> int | None:
    """EXIF orientation from the header alone (None: unknown). Pillow's PNG ``getexif`` decodes the whole
    image to look for an eXIf chunk after the pixels, so a PNG with any eXIf chunk takes the decode path."""
    if fmt == "png":
        return None if b"eXIf" in data else 1
    raw = img.info.get("exif")
    if not raw:
        return 1
    exif = Image.Exif()
    exif.load(raw)
    return int(exif.get(0x0112, 1) or 1)


def _pass_through(data: bytes, fmt: str, img: Image.Image) -> LoadedImage | None:
    """The upload as it is, metadata stripped at the container level, when its pixels need no change:
    orientation 1, RGB/RGBA, sRGB (or no profile), one frame. Pixels are then decoded only if needed."""
    try:
        orientation = _orientation(img, data, fmt)
        icc = img.info.get("icc_profile")
        frames = getattr(img, "n_frames", 1)
    except Exception:  # anything odd in the header: the full decode path will judge the file
        return None
    if orientation != 1 or img.mode not in ("RGB", "RGBA") or frames > 1:
        return None
    if icc and not _is_srgb(icc):
        return None
    try:
        out = strip_metadata(data, fmt)
    except StripError:
        return None
    if not container_sound(out, fmt):
        return None
    w, h = img.size
    return LoadedImage(blob=ImageBlob(data=out, mime=MIME[fmt], width=w, height=h), format=fmt, reencoded=False)


def decoded_pixels(blob: ImageBlob, param: str) -> np.ndarray:
    """Pixels of an upload that intake passed on structure alone: a corrupt pixel stream is still its fault."""
    try:
        return blob.decoded()
    except DecodeError as exc:
        raise ApiError(
            422, "invalid_image", f"{param} is damaged: its pixel data cannot be decoded ({exc}).", param
        ) from exc


def load_image(data: bytes, param: str, limits: Limits, max_bytes: int | None = None) -> LoadedImage:
    """Check limits from the header; pass the bytes through (stripped) when the pixels need no change,
    else decode once, orient, normalize colour and re-encode losslessly."""
    max_bytes = max_bytes or limits.max_file_bytes
    if not data:
        raise ApiError(422, "empty_file", f"{param} is empty (0 bytes).", param)
    if len(data) > max_bytes:
        raise ApiError(413, "file_too_large", f"{param} is {len(data)} bytes; the limit is {max_bytes} bytes.", param)
    fmt = sniff(data)
    if fmt not in ACCEPTED:
        raise ApiError(
            415,
            "unsupported_image_type",
            f"{param} is {fmt}, not an accepted image type; send PNG, JPEG or WebP.",
            param,
            detected=fmt,
        )
    header = _open(data, fmt, param, limits)
    if passed := _pass_through(data, fmt, header):
        return passed
    with DECODE_BUDGET.hold(*header.size):  # decoding, conversions and the re-encode all hold pixels
        return _normalized(header, data, fmt, param)


def _normalized(header: Image.Image, data: bytes, fmt: str, param: str) -> LoadedImage:
    """Decode once, orient, normalize colour; the stored bytes are the upload stripped, or a lossless PNG."""
    img = _decode(header, fmt, param)
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    orientation = int(img.getexif().get(0x0112, 1) or 1)
    icc = img.info.get("icc_profile")
    notes: list[str] = []
    if orientation != 1:
        img = ImageOps.exif_transpose(img)
        notes.append(f"EXIF orientation {orientation} applied")
    img, converted_from = _to_rgb(img)
    if converted_from:
        notes.append(f"colour mode {converted_from} converted to {img.mode}")
    img, profile_converted = _to_srgb(img, icc)
    if profile_converted:
        notes.append("colour profile converted to sRGB")
    pixels = np.asarray(img)
    reencode = orientation != 1 or converted_from is not None or profile_converted
    out_fmt = fmt
    if not reencode:
        try:
            out = strip_metadata(data, fmt)
        except StripError:
            reencode = True
    if reencode:
        out_fmt = "png"  # lossless, so the stored source is exactly the pixels every provider gets
        out = encode(pixels, out_fmt)
    h, w = pixels.shape[:2]
    blob = ImageBlob(data=out, mime=MIME[out_fmt], width=w, height=h, pixels=pixels)
    return LoadedImage(
        blob=blob,
        format=out_fmt,
        reencoded=reencode,
        orientation_applied=orientation,
        converted_from=converted_from,
        notes=notes,
    )
