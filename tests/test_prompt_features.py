"""Protection chips and prompt-derived features."""

from __future__ import annotations

import pytest

from router.chips import CHIP_SENTENCES, apply_chips, validate_chips
from router.errors import ApiError
from router.intake.features import is_removal, scripts_of, wants_text


def test_chips_are_canonical_in_order_and_deduplicated() -> None:
    assert validate_chips(["label", "face", " face "]) == ["face", "label"]
    prompt = apply_chips("make it blue", ["face", "label"])
    assert prompt == f"make it blue\n\n{CHIP_SENTENCES['face']} {CHIP_SENTENCES['label']}"
    assert apply_chips("x", []) == "x"


def test_unknown_chip_lists_the_valid_ones() -> None:
    with pytest.raises(ApiError) as err:
        validate_chips(["face", "aura"])
    assert err.value.status == 422 and "aura" in err.value.message
    assert all(chip in err.value.message for chip in CHIP_SENTENCES)


@pytest.mark.parametrize(
    ("prompt", "removal"),
    [
        ("remove the helmet", True),
        ("Erase the logo", True),
        ("get rid of the cup", True),
        ("去掉背景里的人", True),
        ("add a red hat", False),
        ("make the sky pink", False),
        ("removal van in the background, make it red", False),
    ],
)
def test_removal_intent(prompt: str, removal: bool) -> None:
    assert is_removal(prompt) is removal


def test_scripts_and_text_inference() -> None:
    assert scripts_of("Write 新年快乐 on the banner") == ("cjk", "latin")
    assert scripts_of("ハッピー") == ("kana",)
    assert wants_text('add a sign that says "OPEN"', ("latin",))
    assert wants_text("新年快乐", ("cjk",))
    assert not wants_text("make the sky pink", ("latin",))
