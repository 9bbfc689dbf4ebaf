"""In-process figures: each step of the image path beside the library floors, and the policy decision time."""

from __future__ import annotations

import io
import timeit
from importlib import resources
from typing import Any

import numpy as np
from PIL import Image


def timed(fn, repeat: int) -> float:
    return min(timeit.repeat(fn, number=1, repeat=repeat)) * 1000


def micro(image: bytes, mask: bytes, smoke: bool) -> dict[str, float]:
    """Each step of the image path beside the library floors, so the choice of library stays a measurement."""
    import base64

    import cv2
    import pybase64
    import pyvips

    from providers.imaging import decode, encode
    from router.intake.images import load_image
    from router.intake.masks import EditRegion, convert_mask
    from router.intake.metadata import strip_png
    from router.normalize import drift, mask_lock
    from router.settings import Limits

    r = 3 if smoke else 10
    pixels = np.ascontiguousarray(decode(image)[..., :3])
    uploaded_mask = load_image(mask, "mask", Limits()).blob
    edit = decode(mask)[..., 3] < 128
    other = np.clip(pixels.astype(np.int16) + 3, 0, 255).astype(np.uint8)
    b64 = base64.b64encode(encode(other, "png")).decode()
    webp = encode(other, "webp")
    region = EditRegion.of(edit)

    def pillow(fmt: str, **kw: Any) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, fmt, **kw)
        return buf.getvalue()

    return {
        "pillow_decode_png": timed(lambda: np.asarray(Image.open(io.BytesIO(image))), r),
        "cv2_decode_png": timed(lambda: cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_UNCHANGED), r),
        "editgate_decode_png_vips": timed(lambda: decode(image), r),
        "intake_load_image": timed(lambda: load_image(image, "image", Limits()), r),
        "metadata_strip_png": timed(lambda: strip_png(image), r),
        "mask_intake_decode_and_convert": timed(
            lambda: convert_mask(decode(mask), "auto", (1024, 1024), uploaded=uploaded_mask), r
        ),
        "vips_decode_webp": timed(lambda: pyvips.Image.new_from_buffer(webp, "", access="sequential").numpy(), r),
        "editgate_decode_webp_cv2": timed(lambda: decode(webp), r),
        "mask_region_unpack": timed(region.unpack, r),
        "preservation_score": timed(lambda: drift(other, pixels, ~edit), r),
        "mask_lock": timed(lambda: mask_lock(other, pixels, edit, 3), r),
        "pillow_encode_png_default": timed(lambda: pillow("PNG"), r),
        "pillow_encode_png_level1": timed(lambda: pillow("PNG", compress_level=1), r),
        "cv2_encode_png_level1": timed(lambda: cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1]), r),
        "editgate_encode_png_vips": timed(lambda: encode(pixels, "png"), r),
        "pillow_encode_webp_method2": timed(lambda: pillow("WEBP", quality=90, method=2), r),
        "editgate_encode_webp_vips": timed(lambda: encode(pixels, "webp"), r),
        "editgate_encode_jpeg": timed(lambda: encode(pixels, "jpeg"), r),
        "stdlib_b64decode_result": timed(lambda: base64.b64decode(b64), r),
        "editgate_b64decode_result": timed(lambda: pybase64.b64decode(b64, validate=True), r),
    }


def decision_us(smoke: bool) -> dict[str, float]:
    from policies import Features, decide
    from policies.model import parse_policy
    from router.registry import CLOUD, LocalProvider

    policy = parse_policy(resources.files("policies").joinpath("default.yaml").read_text())
    caps = {"local": LocalProvider.capabilities, **{n: c.capabilities for n, c in CLOUD.items()}}
    est = {"gemini": 0.07, "openai-images": 0.14, "openai-responses": 0.14, "local": 0.0}
    n = 2000 if smoke else 20000
    out = {}
    for name, f in (("first_rule", Features(session_provider="openai-responses")),
                    ("typical", Features(tier="pro", has_mask=True)), ("all_rules", Features(tier="pro"))):  # fmt: skip
        t = min(timeit.repeat(lambda f=f: decide(f, policy, forced_provider=None, capabilities=caps, estimates=est,
                                                 keys={"tenant": "t"}), number=n, repeat=3))  # fmt: skip
        out[name] = t / n * 1e6
    return out
