"""Property: every size the snapping produces is valid for its provider, across many requests."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from providers.catalog import (
    catalog,
    gemini_image_size,
    gemini_output_dims,
    nearest_gemini_aspect,
    openai_size_error,
    snap_openai_size,
)

edges = st.integers(min_value=1, max_value=20000)


@settings(max_examples=2000, deadline=None)
@given(w=edges, h=edges)
def test_gpt_image_2_snapping_is_always_valid(w: int, h: int) -> None:
    sw, sh = snap_openai_size("gpt-image-2", w, h)
    assert openai_size_error("gpt-image-2", f"{sw}x{sh}") is None
    if 1 / 3 <= w / h <= 3:
        assert abs(sw / sh - w / h) / (w / h) < 0.1, "aspect is kept when it is allowed"


@settings(max_examples=300, deadline=None)
@given(w=edges, h=edges)
def test_fixed_size_models_get_a_listed_size(w: int, h: int) -> None:
    sw, sh = snap_openai_size("gpt-image-1.5", w, h)
    assert f"{sw}x{sh}" in catalog()["openai_images"]["fixed_sizes"]


@settings(max_examples=500, deadline=None)
@given(w=edges, h=edges)
def test_gemini_choices_are_supported(w: int, h: int) -> None:
    facts = catalog()["gemini"]
    aspect, size = nearest_gemini_aspect(w, h), gemini_image_size(max(w, h))
    assert aspect in facts["aspect_ratios"] and size in facts["image_sizes"]
    ow, oh = gemini_output_dims(aspect, size)
    assert ow % 16 == 0 and oh % 16 == 0


def test_known_snaps() -> None:
    assert snap_openai_size("gpt-image-2", 1024, 1024) == (1024, 1024)
    assert snap_openai_size("gpt-image-2", 3840, 2160) == (3840, 2160)
    assert snap_openai_size("gpt-image-2", 640, 1138) == (640, 1136)
    assert gemini_image_size(4000) == "4K" and gemini_image_size(9000) == "4K"
