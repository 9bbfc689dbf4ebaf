"""Mask conversion (both conventions), coverage, and the outpaint canvas."""

from __future__ import annotations

import numpy as np
import pytest

from providers.base import ImageBlob
from providers.imaging import encode
from router.errors import ApiError
from router.intake.masks import convert_mask, edit_region
from router.intake.outpaint import build_canvas, size_for_aspect
from tests.conftest import decode, fixture_bytes


def test_alpha_and_black_white_fixtures_mark_the_same_region() -> None:
    alpha, _ = edit_region(decode(fixture_bytes("coffee_background_mask.png")), "auto")
    bw_pixels = np.dstack([decode(fixture_bytes("coffee_background_mask_bw.png"))] * 3)
    bw, used = edit_region(bw_pixels, "auto")
    assert used == "black_white"
    assert (alpha == bw).mean() > 0.99


def test_opaque_rgba_mask_is_read_as_black_white() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[:2, :, :3] = 255
    region, used = edit_region(rgba, "auto")
    assert used == "black_white" and region[:2].all() and not region[2:].any()


def test_full_mask_is_handled_with_a_warning() -> None:
    mask, warning = convert_mask(np.full((4, 4, 3), 255, np.uint8), "auto", (4, 4))
    assert mask is None and warning and "whole image" in warning


def test_converted_mask_is_alpha_convention_png() -> None:
    pixels = np.zeros((4, 6, 3), np.uint8)
    pixels[1:3, 2:4] = 255
    mask, _ = convert_mask(pixels, "black_white", (6, 4))
    assert mask is not None and mask.coverage == pytest.approx(4 / 24)
    rgba = decode(mask.blob.data)
    assert np.array_equal(rgba[..., 3] == 0, pixels[..., 0] == 255)


def test_size_mismatch_names_both_sizes() -> None:
    with pytest.raises(ApiError) as err:
        convert_mask(np.zeros((10, 20, 3), np.uint8), "auto", (512, 512))
    assert "20x10" in err.value.message and "512x512" in err.value.message


@pytest.mark.parametrize(
    ("w", "h", "aspect", "expected"),
    [
        (640, 427, (9, 16), (640, 1138)),
        (640, 427, (16, 9), (759, 427)),
        (100, 100, (1, 1), (100, 100)),
        (300, 100, (1, 1), (300, 300)),
    ],
)
def test_size_for_aspect_contains_the_source(
    w: int, h: int, aspect: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert size_for_aspect(w, h, *aspect) == expected


@pytest.mark.parametrize(
    ("anchor", "corner"),
    [
        ("center", (10, 5)),
        ("top-left", (0, 0)),
        ("bottom-right", (20, 10)),
        ("top", (10, 0)),
        ("right", (20, 5)),
    ],
)
def test_canvas_places_source_at_anchor(anchor: str, corner: tuple[int, int]) -> None:
    src = np.full((10, 20, 3), 200, np.uint8)
    canvas, edit, at = build_canvas(src, (40, 20), anchor)  # type: ignore[arg-type]
    assert at == corner
    x, y = corner
    assert (canvas[y : y + 10, x : x + 20, :3] == 200).all() and (canvas[y : y + 10, x : x + 20, 3] == 255).all()
    assert edit.sum() == 40 * 20 - 10 * 20 and (canvas[edit][:, 3] == 0).all()


def test_converted_mask_holds_no_region_and_decodes_the_same_one_on_demand() -> None:
    """The region is not kept through a provider call (memory); edit_region() recovers exactly what intake measured."""
    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[5:20, 10:50] = 255
    mask, _ = convert_mask(pixels, "black_white", (60, 40))
    assert mask is not None and mask.blob.pixels is None
    assert np.array_equal(mask.blob.edit_region(), pixels[..., 0] == 255)


def test_exact_alpha_png_passes_through_and_soft_alpha_is_rewritten() -> None:
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[5:20, 10:50, 3] = 0
    exact = ImageBlob(data=encode(rgba, "png"), mime="image/png", width=60, height=40)
    mask, _ = convert_mask(rgba, "auto", (60, 40), uploaded=exact)
    assert mask is not None and mask.blob.data is exact.data and mask.coverage == pytest.approx(600 / 2400)
    soft = rgba.copy()
    soft[0, 0, 3] = 200  # still "keep" (>= 128), but not a value providers read the same way
    mask, _ = convert_mask(soft, "auto", (60, 40), uploaded=ImageBlob(encode(soft, "png"), "image/png", 60, 40))
    assert mask is not None and set(np.unique(decode(mask.blob.data)[..., 3])) == {0, 255}


@pytest.mark.parametrize("seed", range(5))
def test_edit_region_kept_at_intake_is_the_decoded_mask_region(seed: int) -> None:
    """Intake keeps the region (bits of its box) so the lock and score never decode the mask again: it must be
    exactly what decoding the mask sent to providers gives."""
    rng = np.random.default_rng(seed)
    pixels = np.zeros((50, 70, 4), np.uint8)
    pixels[..., 3] = 255
    y, x = rng.integers(0, 45), rng.integers(0, 65)
    pixels[y : y + int(rng.integers(1, 30)), x : x + int(rng.integers(1, 40)), 3] = 0
    pixels[0, int(rng.integers(0, 70)), 3] = 0  # a second region touching the border
    mask, _ = convert_mask(pixels, "alpha", (70, 50))
    assert mask is not None
    assert np.array_equal(mask.region.unpack(), mask.blob.edit_region())
    assert mask.region.bits.nbytes <= (mask.region.box[2] * mask.region.box[3] + 7) // 8
