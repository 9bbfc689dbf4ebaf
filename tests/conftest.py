from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from router.app import create_app
from router.settings import Limits, Settings
from tests.live import serve

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"  # ../shared beside the clone

TEST_LIMITS = {
    "max_request_bytes": 6 * 1024 * 1024,
    "max_file_bytes": 5 * 1024 * 1024,
    "max_prompt_chars": 2000,
}


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def png_bytes(arr: np.ndarray, **save: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", **save)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    assert FIXTURES.is_dir(), f"fixtures not found at {FIXTURES}"
    return FIXTURES


@pytest.fixture(scope="session")
def make_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., str]]:
    """Start an editgate on a real socket with the given settings; all stop at session end."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> str:
            limits = {**TEST_LIMITS, **overrides.pop("limits", {})}
            settings = Settings(
                data_dir=tmp_path_factory.mktemp("data"), limits=Limits(**limits), **overrides
            )
            return stack.enter_context(serve(create_app(settings)))

        yield start


@pytest.fixture(scope="session")
def server(make_server: Callable[..., str]) -> str:
    return make_server()


@pytest.fixture()
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=60) as c:
        yield c


@pytest.fixture(scope="session", autouse=True)
def _json_logging() -> None:
    from router.logging import configure_logging

    configure_logging("warning")
