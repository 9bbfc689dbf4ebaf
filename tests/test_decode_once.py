"""One edit decodes each input at most once: the mask at intake only (its region is kept for the lock and the
score), the source and the provider's answer once each, on the full edit and on the drop-in's deferred score.
Every decode is recorded (by the sha256 of the bytes decoded) in a gateway served in this process."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

import providers.imaging
import router.normalize
from router.app import create_app
from router.settings import Limits, Settings
from router.threaded import serve_in_thread
from tests.conftest import TEST_LIMITS, fixture_bytes

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")


@pytest.fixture()
def decodes(emulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Counter[str]]]:
    """A gateway on the emulator, and the count of decodes of each distinct bytes since the fixture started."""
    seen: Counter[str] = Counter()
    real = providers.imaging.decode

    def counted(data: bytes) -> np.ndarray:
        seen[hashlib.sha256(data).hexdigest()] += 1
        return real(data)

    monkeypatch.setattr(providers.imaging, "decode", counted)  # ImageBlob imports it at each call
    monkeypatch.setattr(router.normalize, "decode", counted)
    keys = {"openai_api_key": "sk-test", "openai_base_url": f"{emulator}/v1", "gemini_api_key": "g-test",
            "gemini_base_url": emulator}  # fmt: skip
    app = create_app(Settings(data_dir=tmp_path, limits=Limits(**TEST_LIMITS), **keys))
    with serve_in_thread(app) as url:
        yield url, seen


def test_a_full_edit_decodes_the_mask_source_and_answer_once_each(decodes: tuple[str, Counter[str]]) -> None:
    url, seen = decodes
    files = [("image", ("c.png", COFFEE, "image/png")), ("mask", ("m.png", MASK, "image/png"))]
    data = {"prompt": "a sandy beach", "provider": "openai-images", "protect": "only_mask", "output_format": "webp",
            "preservation": "true"}  # fmt: skip
    r = httpx.post(f"{url}/v1/edits", files=files, data=data, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["preservation"]["mask_locked"] and body["preservation"]["before_lock"] is not None
    assert seen[hashlib.sha256(MASK).hexdigest()] == 1, "the mask was decoded again after intake"
    assert len(seen) >= 3 and max(seen.values()) == 1, f"bytes decoded more than once: {sorted(seen.values())}"


def test_a_drop_in_edit_and_its_deferred_score_decode_each_input_once(decodes: tuple[str, Counter[str]]) -> None:
    url, seen = decodes
    files = [("image", ("c.png", COFFEE, "image/png")), ("mask", ("m.png", MASK, "image/png"))]
    r = httpx.post(f"{url}/v1/images/edits", files=files, data={"model": "gpt-image-2", "prompt": "a sandy beach"},
                   timeout=60)  # fmt: skip
    assert r.status_code == 200, r.text
    edit_id = r.headers["x-editgate-edit-id"]
    for _ in range(600):  # a cap that only ends a hang; nothing is timed
        preservation = httpx.get(f"{url}/v1/edits/{edit_id}", timeout=30).json().get("preservation")
        if preservation:
            break
        time.sleep(0.05)
    assert preservation and preservation["region"] == "outside_mask"
    assert seen[hashlib.sha256(MASK).hexdigest()] == 1, "the deferred score decoded the mask again"
    assert len(seen) >= 3 and max(seen.values()) == 1, f"bytes decoded more than once: {sorted(seen.values())}"
