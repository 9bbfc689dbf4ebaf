"""Cost as arithmetic on data: predicted usage before a call (estimate), reported usage after (actual).

Both go through :func:`cost_usd`, so an estimate and an actual differ only by the usage they price.
Token counting follows ``catalog.yaml``, the same formulas the emulators use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from providers.catalog import (
    catalog,
    gemini_image_size,
    openai_image_input_tokens,
    openai_image_output_tokens,
    snap_openai_size,
    text_tokens,
)
from providers.openai_models import responses_image_model


@dataclass(frozen=True, slots=True)
class PriceTable:
    version: str
    models: Mapping[str, Mapping[str, float]]

    def cost_usd(self, usage: Mapping[str, int], models: Sequence[str]) -> float | None:
        """Price every usage kind by the first of ``models`` that lists it; any unpriced kind -> None."""
        total = 0.0
        for kind, count in usage.items():
            if not count:
                continue
            price = next((self.models[m][kind] for m in models if kind in self.models.get(m, {})), None)
            if price is None:
                return None
            total += count * price / 1_000_000
        return round(total, 6)


def load_prices(path: Path | None = None) -> PriceTable:
    text = path.read_text() if path else resources.files("providers").joinpath("pricing.yaml").read_text()
    data = yaml.safe_load(text)
    models = {name: entry.get("per_million", {}) for name, entry in (data.get("models") or {}).items()}
    return PriceTable(version=str(data["version"]), models=models)


@cache
def default_prices() -> PriceTable:
    return load_prices()


@dataclass(frozen=True, slots=True)
class UsageInputs:
    """What an estimate needs to know about a request."""

    prompt: str
    image_sizes: tuple[tuple[int, int], ...]  # source first, then references
    out_w: int
    out_h: int
    quality: str  # draft | final
    n: int = 1
    has_mask: bool = False
    openai_quality: str | None = None
    """The caller's own OpenAI quality (the drop-in's, sent one to one), which replaces the policy's mapping."""


def predict_usage(provider: str, model: str, options: Mapping[str, Any], u: UsageInputs) -> dict[str, int]:
    """Usage a provider will report for this request, by its documented token counting."""
    if provider == "local":
        return {"images": 1}
    text = text_tokens(u.prompt)
    if provider in ("openai-images", "openai-responses"):
        image_model = model if provider == "openai-images" else options.get("image_model") or responses_image_model()
        quality = u.openai_quality or {"draft": "medium", "final": "high", **options.get("quality_map", {})}[u.quality]
        w, h = snap_openai_size(image_model, u.out_w, u.out_h)
        n = u.n if provider == "openai-images" else 1
        usage = {
            "input_text_tokens": text,
            "input_image_tokens": sum(openai_image_input_tokens(iw, ih) for iw, ih in u.image_sizes),
            "output_image_tokens": openai_image_output_tokens(w, h, quality) * n,
        }
        if provider == "openai-responses":
            usage["model_input_tokens"] = text + 85 * len(u.image_sizes)
            usage["model_output_tokens"] = catalog()["openai_responses"]["mainline_output_tokens"]
        return usage
    if provider == "gemini":
        facts = catalog()["gemini"]
        images = len(u.image_sizes) + (1 if u.has_mask else 0)
        return {
            "input_text_tokens": text + 40 * u.has_mask,
            "input_image_tokens": facts["image_input"]["per_image"] * images,
            "output_image_tokens": facts["output_tokens"][gemini_image_size(max(u.out_w, u.out_h))],
            "output_text_tokens": 10,
        }
    return {}


def priced_models(provider: str, model: str, options: Mapping[str, Any]) -> list[str]:
    """The models whose prices apply to a provider's usage (Responses: mainline and image model)."""
    if provider == "openai-responses":
        return [model, options.get("image_model") or responses_image_model()]
    return [model]


def estimate_usd(provider: str, model: str, options: Mapping[str, Any], u: UsageInputs,
                 prices: PriceTable | None = None) -> float | None:  # fmt: skip
    prices = prices or default_prices()
    usage = predict_usage(provider, model, options, u)
    return prices.cost_usd(usage, priced_models(provider, model, options)) if usage else None


def actual_usd(provider: str, model: str, options: Mapping[str, Any], usage: Mapping[str, int],
               prices: PriceTable | None = None) -> float | None:  # fmt: skip
    prices = prices or default_prices()
    return prices.cost_usd(usage, priced_models(provider, model, options))


__all__: Iterable[str] = ["PriceTable", "UsageInputs", "actual_usd", "estimate_usd", "load_prices", "predict_usage"]
