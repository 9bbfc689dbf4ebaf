"""``local``: an offline engine on the CPU (OpenCV). Zero cost, no keys, and honest about its limits.

It removes what a mask covers (inpainting from the surrounding pixels) and fills the new area of an
outpaint canvas. It cannot follow a prompt to put something new in, nor make variations; those
requests are refused by the capability check before they reach it.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from policies.capabilities import Capabilities
from providers.base import EditJob, ProviderResult, ResultImage, RunBlocking
from providers.errors import InvalidForProvider, InvalidInput
from providers.imaging import DecodeError, encode

_DIRECT_LIMIT_PX = 60_000
"""Above this many pixels to fill, inpaint on a reduced copy: TELEA's cost grows with the area."""


def fill_region(rgb: np.ndarray, edit: np.ndarray, radius: int = 3) -> np.ndarray:
    """Fill ``edit`` (bool HxW) from its surroundings; pixels outside it are returned untouched."""
    mask_u8 = edit.astype(np.uint8) * 255
    area = int(edit.sum())
    if area <= _DIRECT_LIMIT_PX:
        filled = cv2.inpaint(rgb, mask_u8, radius, cv2.INPAINT_TELEA)
    else:
        scale = (_DIRECT_LIMIT_PX / area) ** 0.5
        h, w = edit.shape
        sw, sh = max(1, int(w * scale)), max(1, int(h * scale))
        small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
        small_mask = cv2.resize(mask_u8, (sw, sh), interpolation=cv2.INTER_NEAREST)
        small_mask = cv2.dilate(small_mask, np.ones((3, 3), np.uint8))
        small_filled = cv2.inpaint(small, small_mask, radius, cv2.INPAINT_TELEA)
        filled = cv2.resize(small_filled, (w, h), interpolation=cv2.INTER_CUBIC)
        filled = cv2.GaussianBlur(filled, (0, 0), sigmaX=max(1.0, 1.5 / scale))
    out = rgb.copy()
    out[edit] = filled[edit]
    return out


def _decoded(decode: Callable[[], np.ndarray], param: str) -> np.ndarray:
    """Pixels of an input that intake checked only structurally: a stream that still fails is the input's fault."""
    try:
        return decode()
    except DecodeError as exc:
        raise InvalidInput(f"the {param} cannot be decoded ({exc})", param=param, provider="local") from exc


class LocalProvider:
    name = "local"
    capabilities = Capabilities(
        prompt_guided=False,
        removal=True,
        outpaint=True,
        variation=False,
        generation=False,
        native_mask=True,
        max_refs=0,
        max_n=1,
        transparent=False,
        max_edge=8192,
    )

    def __init__(self, run_blocking: RunBlocking) -> None:
        self._run_blocking = run_blocking

    async def edit(self, job: EditJob) -> ProviderResult:
        if job.mask is None:
            raise InvalidForProvider("local needs a mask marking what to remove or fill", provider=self.name)
        mask = job.mask

        def work() -> tuple[np.ndarray, bytes]:
            edit = _decoded(mask.edit_region, "mask")
            source = _decoded(job.source.decoded, "image")
            rgb = np.ascontiguousarray(source[..., :3])
            out = fill_region(rgb, edit)
            if source.shape[2] == 4:
                alpha = source[..., 3].copy()
                if job.mode == "outpaint":
                    alpha[edit] = 255
                out = np.dstack([out, alpha])
            return out, encode(out, "png")

        pixels, data = await self._run_blocking(work)
        return ProviderResult(
            images=[ResultImage(data=data, mime="image/png", pixels=pixels)],
            usage={"images": 1},
        )
