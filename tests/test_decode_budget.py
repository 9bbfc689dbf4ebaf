"""Concurrent decodes hold at most the decode budget's megapixels, counted from headers before decoding."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from providers.base import ImageBlob
from providers.decode_budget import DECODE_BUDGET, MegapixelBudget
from providers.imaging import decode
from router.intake.images import load_image
from router.intake.prepare import prepare
from router.intake.request import RawInputs
from router.models import EditRequest
from router.settings import Limits
from tests.conftest import png_bytes

SIDE = 1000  # one megapixel per image


def _wait_until(condition: Callable[[], bool]) -> None:
    """Poll for a state the threads must reach; the limit only turns a broken budget into a failure, not a hang."""
    limit = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < limit, "the threads never reached the expected state"
        time.sleep(0.005)


class Gate:
    """Wraps a budget's ``hold``: whoever gets in is counted and stays in until the test opens the gate."""

    def __init__(self, budget: MegapixelBudget) -> None:
        self.budget, self.real = budget, budget.hold
        self.inside = self.most_inside = 0
        self.sizes: list[tuple[int, int]] = []
        self.open = threading.Event()
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, width: int, height: int) -> Iterator[None]:
        with self.real(width, height):
            with self._lock:
                self.inside += 1
                self.most_inside = max(self.most_inside, self.inside)
                self.sizes.append((width, height))
            self.open.wait()
            try:
                yield
            finally:
                with self._lock:
                    self.inside -= 1


def _run_all(jobs: list[Callable[[], object]]) -> tuple[list[object], list[threading.Thread], list[BaseException]]:
    """Start each job in its own thread; returns where results and errors will be, and the threads."""
    results: list[object] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = jobs[i]()
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(jobs))]
    for t in threads:
        t.start()
    return results, threads, errors


@pytest.fixture()
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    before = DECODE_BUDGET.total / 1e6
    DECODE_BUDGET.resize(2.5)  # two one-megapixel decodes fit, a third must wait
    g = Gate(DECODE_BUDGET)
    monkeypatch.setattr(DECODE_BUDGET, "hold", g.hold)
    yield g
    g.open.set()
    DECODE_BUDGET.resize(before)


def _rgb() -> bytes:
    return png_bytes(np.random.default_rng(1).integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8))


def _grey() -> bytes:
    return png_bytes(np.random.default_rng(2).integers(0, 255, (SIDE, SIDE), dtype=np.uint8))


def _mask() -> bytes:
    rgba = np.full((SIDE, SIDE, 4), 255, np.uint8)
    rgba[: SIDE // 2, :, 3] = 0
    return png_bytes(rgba)


def test_every_upload_decode_path_waits_for_the_budget(gate: Gate) -> None:
    rgb, grey, mask = _rgb(), _grey(), _mask()
    jobs: list[Callable[[], object]] = [
        lambda: decode(rgb),  # libvips path: provider results, normalization
        lambda: decode(grey),  # Pillow path
        lambda: load_image(grey, "image", Limits()),  # intake's own decode (grey: converted and re-encoded)
        lambda: ImageBlob(rgb, "image/png", SIDE, SIDE).decoded(),  # lazy pixels of a stored source
        lambda: ImageBlob(mask, "image/png", SIDE, SIDE).edit_region(),  # a mask's region, decoded on demand
        lambda: decode(rgb),
    ]
    results, threads, errors = _run_all(jobs)
    _wait_until(lambda: gate.inside == 2 and DECODE_BUDGET.waiting == 4)
    assert DECODE_BUDGET.held == 2 * SIDE * SIDE <= DECODE_BUDGET.total
    gate.open.set()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert gate.most_inside == 2 and DECODE_BUDGET.held == 0
    assert sorted(gate.sizes) == [(SIDE, SIDE)] * 6  # each took its size from the header
    assert results[0].shape == (SIDE, SIDE, 3) and results[4].mean() == 0.5  # type: ignore[attr-defined]


def test_an_image_larger_than_the_budget_decodes_alone() -> None:
    budget = MegapixelBudget(0.5)
    gate = Gate(budget)
    order: list[str] = []

    def take(hold: Callable[[int, int], object], name: str, side: int) -> None:
        with hold(side, side):  # type: ignore[attr-defined]
            order.append(name)

    big = threading.Thread(target=take, args=(gate.hold, "big", SIDE), daemon=True)
    big.start()
    _wait_until(lambda: gate.inside == 1)  # 1 MP in a 0.5 MP budget: admitted, since nothing else is held
    small = threading.Thread(target=take, args=(budget.hold, "small", 10), daemon=True)
    small.start()
    _wait_until(lambda: budget.waiting == 1)
    assert budget.held == SIDE * SIDE and order == []
    gate.open.set()
    big.join(timeout=10)
    small.join(timeout=10)
    assert order == ["big", "small"] and budget.held == 0


def test_a_nested_decode_in_a_holding_thread_does_not_wait() -> None:
    budget = MegapixelBudget(1.0)
    with budget.hold(SIDE, SIDE), budget.hold(SIDE, SIDE):
        assert budget.held == 2 * SIDE * SIDE
    assert budget.held == 0


def test_the_first_in_line_is_not_overtaken_by_smaller_images() -> None:
    budget = MegapixelBudget(1.0)
    order: list[str] = []
    first = budget.hold(800, 800)
    first.__enter__()

    def take(name: str, w: int) -> None:
        with budget.hold(w, w):
            order.append(name)

    big = threading.Thread(target=take, args=("big", 900), daemon=True)
    big.start()
    _wait_until(lambda: budget.waiting == 1)
    small = threading.Thread(target=take, args=("small", 100), daemon=True)
    small.start()
    _wait_until(lambda: budget.waiting == 2)  # 0.01 MP would fit now, but the big one came first
    first.__exit__(None, None, None)
    big.join(timeout=10)
    small.join(timeout=10)
    assert order == ["big", "small"]


def test_a_prepared_edit_holds_no_pixels_while_it_waits() -> None:
    req = EditRequest(prompt="remove it", mode="outpaint", aspect="16:9")
    p = prepare(req, RawInputs(image=_grey(), references=[_grey()]), Limits())
    assert p.source.reencoded
    for blob in (p.source.blob, p.work, p.mask.blob, p.references[0].blob):  # type: ignore[union-attr]
        assert blob.pixels is None
