"""The server pins glibc's mmap threshold (memory under many in-flight images) unless the operator set it."""

from __future__ import annotations

import platform

import pytest

from router.allocator import pin_mmap_threshold


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt(M_MMAP_THRESHOLD) is glibc's")
def test_threshold_is_pinned_on_glibc() -> None:
    assert pin_mmap_threshold() is True


def test_an_explicit_environment_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert pin_mmap_threshold() is False
