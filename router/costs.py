"""The cost of one edit as the caller sees it: the caller's cap, and the arithmetic behind every number.

- ``max_cost_usd`` (per request): the route's first call is refused (402 ``cost_cap_exceeded``) before
  anything is sent when its estimate is above the cap or unknown; the executor skips any fallback whose
  estimate is (see :func:`over_cap`), so a failover never buys a pricier render than the caller allowed.
- The ``cost`` section names the price table's version and, for the estimate and for the actual, every
  usage kind as tokens x unit price = amount, so the number can be checked by hand against the bill.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.model import Candidate
from providers.pricing import PriceTable, UsageInputs, predict_usage, priced_models
from router.errors import ApiError
from router.models import Cost, CostLine

COST_CAP_CODE = "cost_cap_exceeded"
SKIPPED_OVER_CAP = "skipped_over_cost_cap"
"""The attempt outcome of a fallback the cap kept from being called (never ledgered: nothing was sent)."""


def over_cap(candidate: Candidate, cap: float | None) -> bool:
    """Whether calling ``candidate`` could cost more than ``cap`` (an unknown estimate could)."""
    return cap is not None and (candidate.estimate_usd is None or candidate.estimate_usd > cap)


def cap_refusal(candidate: Candidate, cap: float) -> ApiError:
    """402 naming the estimate and the cap, before any call."""
    if candidate.estimate_usd is None:
        why = f"the cost of {candidate.provider} ({candidate.model}) is unknown (no price in the table)"
    else:
        why = f"the estimate for {candidate.provider} ({candidate.model}) is ${candidate.estimate_usd:.6f}"
    message = f"{why}, above max_cost_usd ${cap:.6f}; raise the cap, or ask for a cheaper edit (quality, size)."
    return ApiError(402, COST_CAP_CODE, message, "max_cost_usd", estimated_usd=candidate.estimate_usd,
                    max_cost_usd=cap)  # fmt: skip


def check_cap(candidates: list[Candidate], cap: float | None) -> None:
    """Refuse the route when its first call is over the caller's cap (the fallbacks are the executor's)."""
    if candidates and over_cap(candidates[0], cap):
        assert cap is not None
        raise cap_refusal(candidates[0], cap)


def check_svg_author(author: tuple[str, str] | None, prices: PriceTable) -> None:
    """Refuse an SVG author the price table cannot price: its tokens would make the whole edit's cost unknown,
    and an unknown cost would pass every budget and cap unseen."""
    if author is None or "svg_output_tokens" in prices.models.get(author[0], {}):
        return
    priced = sorted(m for m, kinds in prices.models.items() if "svg_output_tokens" in kinds)
    raise ApiError(422, "unpriced_svg_author", f"svg.model {author[0]!r} has no SVG prices in the price table, so "
                   f"the edit's cost could not be known; use {', '.join(priced) or 'a priced model'} or omit it.",
                   "svg")  # fmt: skip


def _lines(prices: PriceTable, usage: Mapping[str, int], models: list[str]) -> list[CostLine]:
    return [CostLine(kind=li.kind, tokens=li.tokens, model=li.model, usd_per_million=li.usd_per_million, usd=li.usd)
            for li in prices.lines(usage, models)]  # fmt: skip


def cost_section(prices: PriceTable, candidate: Candidate, options: Mapping[str, Any], inputs: UsageInputs,
                 usage: Mapping[str, int], actual_usd: float | None, cap: float | None) -> Cost:  # fmt: skip
    """The response's ``cost``: both numbers with the token counts and unit prices that produced them."""
    models = priced_models(candidate.provider, candidate.model, options, inputs.svg_author_model)
    predicted = predict_usage(candidate.provider, candidate.model, options, inputs)
    return Cost(
        estimated_usd=candidate.estimate_usd,
        actual_usd=actual_usd,
        usage=dict(usage),
        pricing_version=prices.version,
        breakdown=_lines(prices, usage, models),
        estimate_breakdown=_lines(prices, predicted, models),
        max_cost_usd=cap,
    )
