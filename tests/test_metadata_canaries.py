"""No metadata survives intake: canaries at every position of each container are gone, pixels are not."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from router.errors import ApiError
from router.intake.images import load_image
from router.intake.metadata import StripError, strip_jpeg, strip_metadata, strip_png, strip_webp
from router.settings import Limits
from tests.canaries import (
    base_images,
    decoded,
    jpeg_payloads,
    jpeg_units,
    new_canary,
    plant_each,
    plant_everywhere,
    png_payloads,
    webp_payloads,
    webp_units,
)
from tests.conftest import fixture_bytes

LIMITS = Limits()
BASES = base_images()
PAYLOADS = {"jpeg": jpeg_payloads, "png": png_payloads, "webp": webp_payloads}


def _fmt(name: str) -> str:
    return name.split("_")[0]


def _intake(data: bytes) -> bytes | None:
    """What intake stores for an upload, or None when it refuses the file with a 4xx."""
    try:
        return load_image(data, "image", LIMITS).blob.data
    except ApiError as err:
        assert 400 <= err.status < 500
        return None


@pytest.mark.parametrize("name", sorted(BASES))
def test_canary_at_every_position_is_stripped_and_pixels_kept(name: str) -> None:
    base, canary = BASES[name], new_canary()
    reference = decoded(base)
    planted = plant_each(name, base, canary)
    refused = []
    for label, data in planted.items():
        same = np.array_equal(decoded(data), reference)
        try:
            out = strip_metadata(data, _fmt(name))
        except StripError:
            out = None
            refused += [label] if same else []
        if out is not None:
            assert canary not in out, label
            if same:
                assert np.array_equal(decoded(out), reference), f"{label}: stripping changed the pixels"
        stored = _intake(data)
        assert stored is None or canary not in stored, label
        if same:
            assert stored is not None and np.array_equal(decoded(stored), reference), label
    # A file a decoder reads is stripped, not refused (a refusal costs a re-encode); the exception is a
    # second PNG spliced into the chunk stream, which only Pillow's lazy reader tolerates.
    assert all("second_png@" in label for label in refused), refused


@pytest.mark.parametrize("name", sorted(BASES))
def test_canaries_everywhere_at_once(name: str) -> None:
    canary = new_canary()
    data = plant_everywhere(name, BASES[name], canary)
    assert data.count(canary) > 5
    out = strip_metadata(data, _fmt(name))
    assert canary not in out
    assert np.array_equal(decoded(out), decoded(BASES[name]))
    stored = _intake(data)
    assert stored is not None and canary not in stored
    assert np.array_equal(decoded(stored), decoded(BASES[name]))


def _pixel_data_spans(name: str) -> list[range]:
    """Byte ranges of WebP's compressed pixels (VP8, VP8L, ALPH payloads). Elsewhere the walk notices a
    splice: a marker inside JPEG entropy-coded data ends it; a PNG chunk's CRC no longer matches."""
    if _fmt(name) != "webp":
        return []
    spans, pos = [], 0
    for unit in webp_units(BASES[name]):
        if unit[:4] in (b"VP8 ", b"VP8L", b"ALPH"):
            spans.append(range(pos + 8, pos + len(unit)))
        pos += len(unit)
    return spans


def _inside_pixel_data(name: str, at: int) -> bool:
    return any(at in span for span in _pixel_data_spans(name))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_canary_at_any_byte_offset_never_reaches_the_store(data: st.DataObject) -> None:
    """Illegal positions too: inside entropy-coded data, inside chunks, in the middle of a header.

    The payloads are metadata structures (a marker segment, a chunk, a second image). Bytes spliced into
    a VP8/VP8L/ALPH payload without fixing its length are compressed pixels, not metadata: the
    container stays well formed and only a decode could tell, so those offsets are left out."""
    name = data.draw(st.sampled_from(sorted(BASES)))
    base, canary = BASES[name], new_canary()
    payload = data.draw(st.sampled_from(list(PAYLOADS[_fmt(name)](canary).values())))
    at = data.draw(st.integers(0, len(base)).filter(lambda at: not _inside_pixel_data(name, at)))
    planted = base[:at] + payload + base[at:]
    try:
        out = strip_metadata(planted, _fmt(name))
    except StripError:
        out = None
    assert out is None or canary not in out
    stored = _intake(planted)
    assert stored is None or canary not in stored


def test_rotated_gps_fixture_leaks_nothing() -> None:
    original = fixture_bytes("chelsea_gps_rotated.jpg")
    with Image.open(io.BytesIO(original)) as img:
        exif = img.getexif()
        gps = exif.get_ifd(0x8825)
        assert exif.get(0x0112) == 6 and gps
        secrets = [str(v).encode() for v in (exif.get(0x010F), exif.get(0x0110)) if v]
        upright = np.asarray(img.transpose(Image.Transpose.ROTATE_270).convert("RGB"))
    exif_bytes = original[original.index(b"Exif\x00\x00") : original.index(b"Exif\x00\x00") + 180]
    canary = new_canary()
    units, payloads = jpeg_units(original), jpeg_payloads(canary)
    assert units[2][4:10] == b"Exif\x00\x00"  # canaries after it: its orientation stays the first read
    second = payloads.pop("mpo_second_image")
    planted = b"".join([*units[:3], *payloads.values(), *units[3:], second, canary])
    for data in (original, planted):
        loaded = load_image(data, "image", LIMITS)
        assert loaded.reencoded and loaded.orientation_applied == 6
        stored = loaded.blob.data
        assert canary not in stored and b"Exif" not in stored and not any(s in stored for s in secrets)
        assert exif_bytes[6:40] not in stored
        with Image.open(io.BytesIO(stored)) as out:
            assert not out.getexif() and not set(out.info) & {"exif", "xmp", "icc_profile", "comment"}
            assert np.array_equal(np.asarray(out.convert("RGB")), upright)


@pytest.mark.parametrize(
    ("strip", "data"),
    [
        pytest.param(strip_jpeg, b"\xff\xd8\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00\x12\x34", id="jpeg-scan-first"),
        pytest.param(strip_jpeg, BASES["jpeg_baseline"][:-2], id="jpeg-no-eoi"),
        pytest.param(strip_jpeg, BASES["jpeg_baseline"][:200], id="jpeg-cut-in-segment"),
        pytest.param(
            strip_png, b"\x89PNG\r\n\x1a\n\x00\x00\x00\x01CgBI\x00\x00\x00\x00\x00", id="png-unknown-critical"
        ),
        pytest.param(strip_webp, BASES["webp_lossy"][:12] + b"EXIF\x04\x00\x00\x00abcd", id="webp-no-image"),
        pytest.param(strip_webp, BASES["webp_lossy"][:-5], id="webp-riff-past-end"),
    ],
)
def test_malformed_containers_are_strip_errors(strip: object, data: bytes) -> None:
    with pytest.raises(StripError):
        strip(data)  # type: ignore[operator]


def test_vp8x_metadata_flags_and_reserved_bits_are_cleared() -> None:
    base = BASES["webp_extended"]
    flagged = base[:20] + bytes([base[20] | 0x2C]) + b"\x01\x02\x03" + base[24:]
    out = strip_webp(flagged)
    assert out[20] == base[20] & 0x12 and out[21:24] == b"\x00\x00\x00"
    assert np.array_equal(decoded(out), decoded(base))
