"""Protection chips: each becomes one canonical invariant sentence appended to the provider prompt.

The order is fixed (the order below), so the same chips always produce the same prompt, and the
sentences are repeated on every refinement round so a later round cannot quietly undo them.
"""

from __future__ import annotations

from collections.abc import Iterable

from router.errors import ApiError

CHIP_SENTENCES: dict[str, str] = {
    "face": "Keep the face, facial features and expression unchanged.",
    "hair": "Keep the hair style, length and colour unchanged.",
    "skin_tone": "Keep the skin tone exactly as it is.",
    "pose": "Keep the body pose and the position of the limbs unchanged.",
    "product_shape": "Keep the product's shape, proportions and silhouette unchanged.",
    "label": "Keep every label and its printed text exactly as it is, legible and unaltered.",
    "logo": "Keep logos exactly as they are, with no change to shape, colour or placement.",
    "background": "Keep the background unchanged.",
    "camera_angle": "Keep the camera angle, perspective and framing unchanged.",
    "lighting": "Keep the lighting direction, intensity and colour unchanged.",
    "composition": "Keep the overall composition and the position of every subject unchanged.",
    "only_mask": "Change only the masked region; leave every pixel outside it untouched.",
}
VALID_CHIPS = tuple(CHIP_SENTENCES)


def validate_chips(chips: Iterable[str]) -> list[str]:
    """Deduplicate and order chips canonically; unknown names are a 422 that lists the valid ones."""
    wanted = {c.strip() for c in chips if c.strip()}
    unknown = sorted(wanted - set(CHIP_SENTENCES))
    if unknown:
        raise ApiError(
            422,
            "unknown_protect_chip",
            f"Unknown protect chip(s): {', '.join(unknown)}. Valid chips: {', '.join(VALID_CHIPS)}.",
            "protect",
        )
    return [c for c in VALID_CHIPS if c in wanted]


def apply_chips(prompt: str, chips: list[str]) -> str:
    if not chips:
        return prompt
    return prompt.rstrip() + "\n\n" + " ".join(CHIP_SENTENCES[c] for c in chips)
