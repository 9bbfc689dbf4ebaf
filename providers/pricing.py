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
    openai_partial_image_tokens,
    responses_rebilled_tokens,
    snap_openai_size,
    svg_author_tokens,
    text_tokens,
)
from providers.openai_models import responses_image_model


@dataclass(frozen=True, slots=True)
class CostLine:
    """One priced usage kind: ``tokens`` x ``usd_per_million`` / 1e6 = ``usd``, at ``model``'s price."""

    kind: str
    tokens: int
    model: str | None
    usd_per_million: float | None
    usd: float | None


@dataclass(frozen=True, slots=True)
class PriceTable:
    version: str
    models: Mapping[str, Mapping[str, float]]

    def lines(self, usage: Mapping[str, int], models: Sequence[str]) -> list[CostLine]:
        """Each non-zero usage kind priced by the first of ``models`` that lists it (unpriced: model and usd None)."""
        out = []
        for kind, count in usage.items():
            if not count:
                continue
            model = next((m for m in models if kind in self.models.get(m, {})), None)
            price = self.models[model][kind] if model else None
            usd = round(count * price / 1_000_000, 6) if price is not None else None
            out.append(CostLine(kind=kind, tokens=count, model=model, usd_per_million=price, usd=usd))
        return out

    def cost_usd(self, usage: Mapping[str, int], models: Sequence[str]) -> float | None:
        """The sum of :meth:`lines`; any unpriced kind makes the whole cost unknown (None, never a guess)."""
        total = 0.0
        for line in self.lines(usage, models):
            if line.usd_per_million is None:
                return None
            total += line.tokens * line.usd_per_million / 1_000_000
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
    carried: tuple[tuple[str, int], ...] = ()
    """Input a continued conversation re-sends (usage kind, tokens): a chained Gemini round's history."""
    partial_images: int = 0
    """Streamed previews asked for: OpenAI bills each one as image output tokens."""
    chain_tokens: int = 0
    """Mainline tokens a continued Responses chain re-bills for its earlier rounds (0: not a continued chain)."""
    openai_quality: str | None = None
    """The caller's own OpenAI quality (the drop-in's, sent one to one), which replaces the policy's mapping."""
    svg_author: tuple[str, str] | None = None
    """SVG output's author (model, reasoning effort): its tokens are billed apart, at its own prices."""

    @property
    def svg_author_model(self) -> str | None:
        return self.svg_author[0] if self.svg_author else None


def svg_usage_kinds(tokens: Mapping[str, int]) -> dict[str, int]:
    """``svg_usage``'s counts as usage kinds (reasoning is within the output, priced at zero on its own)."""
    return {f"svg_{name}": tokens.get(name, 0) for name in ("input_tokens", "output_tokens", "reasoning_tokens")}


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
            "output_image_tokens": openai_image_output_tokens(w, h, quality) * n
            + openai_partial_image_tokens(u.partial_images),
        }
        if provider == "openai-responses":
            usage.update(_mainline_usage(text, len(u.image_sizes), u.chain_tokens))
        elif u.svg_author is not None:
            usage.update(svg_usage_kinds(svg_author_tokens(u.prompt, u.svg_author[1])))
        return usage
    if provider == "gemini":
        facts = catalog()["gemini"]
        images = len(u.image_sizes) + (1 if u.has_mask else 0)
        carried = dict(u.carried)
        return {
            "input_text_tokens": text + 40 * u.has_mask + carried.get("input_text_tokens", 0),
            "input_image_tokens": facts["image_input"]["per_image"] * images + carried.get("input_image_tokens", 0),
            "output_image_tokens": facts["output_tokens"][gemini_image_size(max(u.out_w, u.out_h))],
            # responseModalities ["IMAGE"]: no text; a thinking model's thoughts are billed as output text
            "output_thinking_tokens": facts["thoughts_tokens"] if model in facts["thinking_models"] else 0,
        }
    return {}


def _mainline_usage(text: int, images: int, chain_tokens: int) -> dict[str, int]:
    """The Responses mainline model: a first round reads the prompt and the images; a continued round sends
    no image but is billed every earlier round's items again (``chain_tokens``)."""
    facts = catalog()["openai_responses"]
    read = chain_tokens if chain_tokens else facts["mainline_image_tokens"] * images
    return {"model_input_tokens": text + read, "model_output_tokens": facts["mainline_output_tokens"]}


def chain_tokens_after(usage: Mapping[str, int]) -> int:
    """What a served Responses round (its reported usage) re-bills to the round that continues from it."""
    return responses_rebilled_tokens(usage.get("model_input_tokens", 0), usage.get("model_output_tokens", 0), 1)


def priced_models(provider: str, model: str, options: Mapping[str, Any], svg_author: str | None = None) -> list[str]:
    """The models whose prices apply to a provider's usage (Responses: mainline and image model; SVG output:
    the image model and its author)."""
    if provider == "openai-responses":
        return [model, options.get("image_model") or responses_image_model()]
    return [model] if svg_author is None else [model, svg_author]


def estimate_usd(provider: str, model: str, options: Mapping[str, Any], u: UsageInputs,
                 prices: PriceTable | None = None) -> float | None:  # fmt: skip
    prices = prices or default_prices()
    usage = predict_usage(provider, model, options, u)
    return prices.cost_usd(usage, priced_models(provider, model, options, u.svg_author_model)) if usage else None


def actual_usd(provider: str, model: str, options: Mapping[str, Any], usage: Mapping[str, int],
               prices: PriceTable | None = None, svg_author: str | None = None) -> float | None:  # fmt: skip
    prices = prices or default_prices()
    return prices.cost_usd(usage, priced_models(provider, model, options, svg_author))


__all__: Iterable[str] = [
    "CostLine", "PriceTable", "UsageInputs", "actual_usd", "chain_tokens_after", "estimate_usd", "load_prices",
    "predict_usage", "svg_usage_kinds",
]  # fmt: skip
