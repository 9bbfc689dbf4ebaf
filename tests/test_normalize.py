"""Normalization: size and format, pass-through, preservation score and mask lock."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from providers.base import ImageBlob, ResultImage
from providers.imaging import encode
from router.normalize import _locked_drift, fit, lock_window, mask_lock, normalize
from tests.conftest import decode

RNG = np.random.default_rng(7)
SOURCE = RNG.integers(0, 255, (60, 80, 3), dtype=np.uint8)
EDIT = np.zeros((60, 80), bool)
EDIT[20:40, 30:60] = True


def _drifted() -> np.ndarray:
    out = np.clip(SOURCE.astype(int) + 20, 0, 255).astype(np.uint8)
    out[EDIT] = 0
    return out


def _norm(result: np.ndarray, data: bytes | None = None, **kw: object):
    image = ResultImage(data=data or encode(result, "png"), mime="image/png")
    args = {
        "source": ImageBlob(b"", "image/png", 80, 60, SOURCE),
        "edit": EDIT,
        "lock": False,
        "score": True,
        "out_size": None,
        "fmt": "png",
        "quality": None,
        "opaque": False,
        "feather_px": 3,
    }
    return normalize(image, **{**args, **kw})


def test_mask_lock_restores_outside_exactly_and_reports_removed_drift() -> None:
    norm, pres = _norm(_drifted(), lock=True)
    out = decode(norm.data)
    assert np.array_equal(out[~EDIT], SOURCE[~EDIT])
    assert pres.mask_locked and pres.mean_abs_diff == 0.0 and pres.changed_share == 0.0
    assert pres.before_lock is not None and pres.before_lock.changed_share == 1.0
    assert out[30, 45].max() == 0, "the core of the edit region keeps the provider's pixels"


def test_feather_ramps_inside_the_mask_only() -> None:
    locked = mask_lock(_drifted(), SOURCE, EDIT, feather_px=4)
    edge = locked[20, 45].astype(int)
    assert 0 < np.abs(edge - SOURCE[20, 45]).max() < 255  # a blend at the boundary, not a hard cut


def test_unlocked_score_measures_drift_outside_the_mask() -> None:
    _, pres = _norm(_drifted())
    assert not pres.mask_locked and pres.region == "outside_mask"
    assert 15 < pres.mean_abs_diff <= 20 and pres.changed_share > 0.9


def test_pass_through_keeps_provider_bytes() -> None:
    data = encode(SOURCE, "png")
    norm, pres = _norm(SOURCE, data=data)
    assert norm.data == data
    assert pres.mean_abs_diff == 0.0


def test_resize_and_format_conversion() -> None:
    norm, _ = _norm(SOURCE, out_size=(40, 30), fmt="jpeg", quality=80)
    assert (norm.width, norm.height, norm.format) == (40, 30, "jpeg")
    assert decode(norm.data).shape == (30, 40, 3)


def test_opaque_background_flattens_alpha() -> None:
    rgba = np.dstack([SOURCE, np.zeros((60, 80), np.uint8)])
    norm, _ = _norm(rgba, opaque=True)
    assert decode(norm.data).shape == (60, 80, 3)
    assert (decode(norm.data) == 255).all()


def test_fit_crops_instead_of_stretching() -> None:
    wide = np.zeros((100, 200, 3), np.uint8)
    wide[:, 50:150] = 255
    out = fit(wide, (50, 50))
    assert out.shape == (50, 50, 3) and (out == 255).all()


def test_large_images_are_scored_at_reduced_resolution_and_a_lock_still_scores_zero() -> None:
    rng = np.random.default_rng(3)
    big = rng.integers(0, 255, (1200, 1600, 3), dtype=np.uint8)
    edit = np.zeros((1200, 1600), bool)
    edit[300:700, 500:1100] = True
    drifted = np.clip(big.astype(int) + 12, 0, 255).astype(np.uint8)
    drifted[edit] = 0
    source = ImageBlob(b"", "image/png", 1600, 1200, big)
    image = ResultImage(data=encode(drifted, "png"), mime="image/png")
    args = {"source": source, "edit": edit, "out_size": None, "fmt": "png", "quality": None, "opaque": False,
            "feather_px": 3, "score": True}  # fmt: skip
    _, loose = normalize(image, lock=False, **args)
    assert loose is not None and abs(loose.mean_abs_diff - 12) < 0.5  # the reduced copy measures the same drift
    _, locked = normalize(image, lock=True, **args)
    assert locked is not None and locked.mean_abs_diff == 0.0 and locked.changed_share == 0.0


def test_pass_through_without_scoring_decodes_nothing() -> None:
    data = encode(SOURCE, "png")
    never = ImageBlob(b"not an image: decoding it would fail", "image/png", 80, 60)
    out, pres = normalize(ResultImage(data=data, mime="image/png"), source=never, edit=None, lock=False, score=False,
                          out_size=(80, 60), fmt="png", quality=None, opaque=False, feather_px=3)  # fmt: skip
    assert out.data == data and pres is None and never.pixels is None


@pytest.mark.parametrize(("result_ch", "source_ch"), [(3, 3), (4, 3), (3, 4), (4, 4)])
@pytest.mark.parametrize("feather", [0, 3, 12])
def test_mask_lock_equals_the_full_float_blend(result_ch: int, source_ch: int, feather: int) -> None:
    """The fast lock (masked copy + blend of the feather band only) gives the reference blend's exact bytes."""
    result = RNG.integers(0, 256, (60, 80, result_ch), dtype=np.uint8)
    source = RNG.integers(0, 256, (60, 80, source_ch), dtype=np.uint8)
    edit = EDIT.copy()
    edit[50:, :5] = True  # a second region touching the border
    weight = cv2.distanceTransform(edit.astype(np.uint8), cv2.DIST_L2, 3)
    weight = np.clip(weight / max(feather, 1), 0.0, 1.0)[..., None]
    assert np.array_equal(mask_lock(result, source, edit, feather), _reference_lock(result, source, edit, feather))


def _reference_lock(result: np.ndarray, source: np.ndarray, edit: np.ndarray, feather: int) -> np.ndarray:
    """The lock as a float blend over the whole frame, weights from the whole frame's distance transform."""
    weight = cv2.distanceTransform(edit.astype(np.uint8), cv2.DIST_L2, 3)
    weight = np.clip(weight / max(feather, 1), 0.0, 1.0)[..., None]
    c = min(result.shape[2], source.shape[2])
    expected = result.copy()
    expected[..., :c] = np.clip(result[..., :c] * weight + source[..., :c] * (1.0 - weight) + 0.5, 0, 255)
    return expected


def _random_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """One to three ellipses and rectangles anywhere, some crossing the border, some tiny."""
    yy, xx = np.ogrid[:h, :w]
    edit = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.integers(-10, h + 10), rng.integers(-10, w + 10)
        ry, rx = rng.integers(1, h // 3), rng.integers(1, w // 3)
        if rng.random() < 0.5:
            edit |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        else:
            edit[max(cy - ry, 0) : max(cy + ry, 0), max(cx - rx, 0) : max(cx + rx, 0)] = True
    return edit


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("feather", [0, 3, 9])
def test_lock_composited_in_the_mask_window_equals_the_whole_frame_blend(seed: int, feather: int) -> None:
    """Only the mask's bounding box plus the feather's margin is composited; the bytes are the whole frame's."""
    rng = np.random.default_rng(seed)
    h, w = 120, 160
    edit = _random_mask(rng, h, w)
    result = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    source = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    locked = mask_lock(result, source, edit, feather)
    assert np.array_equal(locked, _reference_lock(result, source, edit, feather))
    window = lock_window(edit, feather)
    if window is not None:
        outside = np.ones((h, w), bool)
        outside[window] = False
        assert not edit[outside].any() and np.array_equal(locked[outside], source[outside])


def test_small_mask_window_is_its_box_plus_the_feather_margin() -> None:
    edit = np.zeros((400, 600), bool)
    edit[100:120, 300:340] = True
    ys, xs = lock_window(edit, 3)
    assert (ys.start, ys.stop, xs.start, xs.stop) == (92, 128, 292, 348)
    assert lock_window(np.zeros((4, 4), bool), 3) is None


def test_score_after_a_lock_is_measured_over_the_whole_outside() -> None:
    """The after-lock score reads the window only, but it measures: a pixel the lock left changed outside the
    mask counts, over every pixel outside the mask (the same figures as a whole-frame, full-resolution diff)."""
    rng = np.random.default_rng(5)
    source = rng.integers(0, 200, (120, 160, 3), dtype=np.uint8)
    edit = np.zeros((120, 160), bool)
    edit[40:60, 50:90] = True
    locked = source.copy()
    locked[edit] = 255
    locked[38, 60] += 30  # outside the mask, inside the window
    locked[61, 70, 1] += 5  # below the threshold of "changed"
    window = lock_window(edit, 3)
    d = _locked_drift(locked, source, edit, window)
    full = np.abs(locked.astype(int) - source).max(axis=2)[~edit]
    assert d.mean_abs_diff == round(full.mean(), 4) and d.mean_abs_diff > 0
    assert d.changed_share == round(float((full > 8).mean()), 6) == round(1 / full.size, 6)
