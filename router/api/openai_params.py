"""The drop-in's OpenAI parameters: which provider and model a ``model`` names, what that model takes, what goes on.

A GPT Image model id from the catalog pins the Images provider and that model; its parameters are checked
against what the model takes and refused as the Images API refuses them (400, its ``code`` and ``param``).
A policy alias lets the policy decide; a model-specific parameter then rules out every candidate model that
does not take it (the engine's screening), so ``markup`` or ``quality=xhigh`` is forwarded or refused by name,
never dropped. The rest (``moderation``, ``output_compression``, ``user``, ``safety_identifier``, ...) travels
to the provider as ``provider_params``.
"""

from __future__ import annotations

from typing import Any

from policies.model import Policy
from providers.openai_models import BASE_FORMATS, Surface, image_models, models_taking, refusal, value_refusal
from router.errors import ApiError

NEWER_FIELDS = frozenset({"complexity", "frame_count", "frame_duration_ms", "svg"})
"""Fields the newer GPT Image models added (``markup`` is a file part)."""
FORWARDED = ("quality", "complexity", "frame_count", "frame_duration_ms", "svg", "moderation", "output_compression",
             "user", "safety_identifier", "input_fidelity")  # fmt: skip
QUALITY_TIER = {"low": "draft", "medium": "draft", "high": "final", "auto": "final", "xhigh": "final", "max": "final",
                "standard": "final", "hd": "final"}  # fmt: skip
"""editgate's own tier for each OpenAI quality (what non-OpenAI providers and the policy see)."""
LEGACY_QUALITIES = ("standard", "hd")
"""DALL·E's qualities: accepted as ``final``, never forwarded (no GPT Image model takes them)."""


def images_provider(policy: Policy) -> str | None:
    """The provider whose configured model is a GPT Image model: the one that serves a pinned image model."""
    return next((name for name, p in policy.providers.items() if p.model in image_models()), None)


def pinned_image_model(policy: Policy, model: str | None) -> tuple[str, str] | None:
    """(provider, model) when ``model`` is a GPT Image model id of the catalog and a provider serves them."""
    provider = images_provider(policy)
    if model in image_models() and provider is not None:
        return provider, model  # type: ignore[return-value]
    return None


def collapse_svg(fields: dict[str, Any]) -> dict[str, Any]:
    """Multipart sends ``svg`` as ``svg[model]`` / ``svg[reasoning][effort]`` fields: one ``svg`` object."""
    parts = {k: fields.pop(k) for k in [k for k in fields if k.startswith("svg[")]}
    if parts:
        svg: dict[str, Any] = {}
        for key, value in parts.items():
            path = key.removeprefix("svg[").removesuffix("]").split("][")
            node = svg
            for name in path[:-1]:
                node = node.setdefault(name, {})
            node[path[-1]] = value
        fields["svg"] = svg
    return fields


def check_for_model(model: str, surface: Surface, fields: dict[str, Any], has_mask: bool, has_markup: bool) -> None:
    """Refuse, as the Images API does, what ``model`` does not take."""
    found = refusal(model, surface, {**fields, "mask": has_mask or None, "markup": has_markup or None})
    if found is not None:
        message = found.message
        if found.code == "unsupported_parameter" and (takers := models_taking((found.param,))):
            message += f" Models that take it: {', '.join(takers)}."
        raise ApiError(400, found.code, message, found.param)


def check_values(surface: Surface, fields: dict[str, Any], has_mask: bool, has_markup: bool) -> None:
    """Before the policy chooses a model: refuse what no model takes."""
    found = value_refusal(surface, {**fields, "mask": has_mask or None, "markup": has_markup or None})
    if found is not None:
        raise ApiError(400, found.code, found.message, found.param)


def provider_params(fields: dict[str, Any], has_markup: bool = False) -> dict[str, Any]:
    """The OpenAI fields that go to the provider as they came (quality one to one). ``markup`` is recorded as
    sent (the file itself travels with the inputs), so a re-run without the file cannot silently drop it."""
    params = {name: fields[name] for name in FORWARDED if fields.get(name) not in (None, "")}
    if has_markup:
        params["markup"] = True
    if params.get("quality") in LEGACY_QUALITIES:
        del params["quality"]
    if fields.get("output_format") not in (None, "", *BASE_FORMATS):
        params["output_format"] = fields["output_format"]
    return params


def svg_usage(model: str | None, usage: dict[str, int]) -> dict[str, Any] | None:
    """``svg_usage`` as the Images API reports it: the SVG author's tokens, apart from the image model's."""
    if not usage.get("svg_output_tokens"):
        return None
    inp, out = usage.get("svg_input_tokens", 0), usage["svg_output_tokens"]
    return {"model": model, "input_tokens": inp, "output_tokens": out,
            "reasoning_tokens": usage.get("svg_reasoning_tokens", 0), "total_tokens": inp + out}  # fmt: skip


def mainline_usage(model: str, usage: dict[str, int]) -> dict[str, Any] | None:
    """A Responses route's mainline model tokens, reported apart from the image tokens (like ``svg_usage``)."""
    if "model_input_tokens" not in usage and "model_output_tokens" not in usage:
        return None
    inp, out = usage.get("model_input_tokens", 0), usage.get("model_output_tokens", 0)
    return {"model": model, "input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}
