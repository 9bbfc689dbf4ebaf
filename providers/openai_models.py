"""What each GPT Image model takes, read from ``catalog.yaml``, and the one check that compares a request with it.

The drop-in (what to accept and forward), the emulator (what to refuse, as the API does) and the policy
engine's screening (which candidate models can serve a request) all ask this module, so the three cannot
disagree. A refusal is worded and coded as the Images API words it, naming the parameter to fix.

Parameters come in two kinds: the base set every GPT Image model takes, and the *gated* ones only some
models take (``quality`` xhigh/max, ``output_format`` gif/svg, ``complexity``, ``markup``, ``frame_count``,
``frame_duration_ms``, ``svg``). :func:`needs` names the gated ones a request uses, as tokens such as
``quality=xhigh`` or ``markup``; :func:`accepted_tokens` lists the tokens a model takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from providers.catalog import catalog

Surface = Literal["edits", "generations", "responses_tool"]
BASE_QUALITIES = ("low", "medium", "high", "auto")
BASE_FORMATS = ("png", "jpeg", "webp")
GATED_PARAMS = ("complexity", "markup", "frame_count", "frame_duration_ms", "svg")
_GIF_ONLY = ("frame_count", "frame_duration_ms")


@dataclass(frozen=True, slots=True)
class ImageModelFacts:
    model: str
    generation: str
    effective: str | None
    qualities: tuple[str, ...]
    formats: tuple[str, ...]
    params: frozenset[str]
    input_fidelity: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ParamRefusal:
    """Why the API refuses a request's parameters: a 400 with OpenAI's ``message``, ``param`` and ``code``."""

    message: str
    param: str
    code: str


@cache
def image_models() -> dict[str, ImageModelFacts]:
    """Every GPT Image model id in the catalog, with what it takes."""
    out = {}
    for model, entry in catalog()["openai_image_models"].items():
        out[model] = ImageModelFacts(
            model=model,
            generation=str(entry["generation"]),
            effective=entry.get("effective"),
            qualities=(*BASE_QUALITIES, *entry.get("qualities", ())),
            formats=(*BASE_FORMATS, *entry.get("formats", ())),
            params=frozenset(entry.get("params", ())),
            input_fidelity=tuple(entry.get("input_fidelity", ())),
        )
    return out


def responses_image_model() -> str:
    """The image model editgate asks the Responses tool for when the policy names none."""
    return str(catalog()["openai_responses"]["image_model"])


def surface_params(surface: Surface) -> frozenset[str]:
    return frozenset(catalog()["openai_image_params"][surface])


@cache
def accepted_tokens(model: str) -> frozenset[str]:
    """The gated tokens ``model`` takes (empty for a model that is not a GPT Image model)."""
    facts = image_models().get(model)
    if facts is None:
        return frozenset()
    tokens = {f"quality={q}" for q in facts.qualities if q not in BASE_QUALITIES}
    tokens |= {f"output_format={f}" for f in facts.formats if f not in BASE_FORMATS}
    return frozenset(tokens | (facts.params & set(GATED_PARAMS)))


def needs(params: Mapping[str, Any]) -> tuple[str, ...]:
    """The gated tokens a request's parameters need a model to take (sorted, for a stable feature)."""
    tokens = {name for name in GATED_PARAMS if params.get(name) not in (None, "", False)}
    if params.get("quality") not in (None, *BASE_QUALITIES):
        tokens.add(f"quality={params['quality']}")
    if params.get("output_format") not in (None, *BASE_FORMATS):
        tokens.add(f"output_format={params['output_format']}")
    return tuple(sorted(tokens))


def models_taking(tokens: tuple[str, ...]) -> list[str]:
    """The catalog's models that take every one of ``tokens`` (for a message that says what to use)."""
    return [m for m in image_models() if set(tokens) <= accepted_tokens(m)]


def _choice(value: Any, allowed: tuple[str, ...] | list[str], param: str) -> ParamRefusal | None:
    if value is not None and value not in allowed:
        return ParamRefusal(f"Invalid value: '{value}'. Supported values are: {list(allowed)}.", param, "invalid_value")
    return None


def _int_in(value: Any, lo: int, hi: int, param: str) -> ParamRefusal | None:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return ParamRefusal(f"Invalid type for '{param}': expected an integer.", param, "invalid_type")
    if not lo <= n <= hi:
        return ParamRefusal(f"Invalid '{param}': must be between {lo} and {hi}.", param, "integer_out_of_range")
    return None


def refusal(model: str, surface: Surface, params: Mapping[str, Any]) -> ParamRefusal | None:
    """Why ``model`` on ``surface`` refuses ``params`` (None when it takes them all).

    ``params`` holds the request's OpenAI fields as sent (``markup`` and ``mask`` as any truthy value
    when a file was sent); ``stream``, ``partial_images`` and ``n`` are read for the gif/svg rules."""
    facts = image_models().get(model)
    if facts is None:
        return ParamRefusal(f"Invalid value for 'model' = {model}.", "model", "invalid_value")
    if found := _not_on_surface(surface, params):
        return found
    for name in GATED_PARAMS:
        if params.get(name) not in (None, "") and name not in facts.params:
            return ParamRefusal(
                f"Unsupported parameter: '{name}' is not supported with model '{model}'.", name, "unsupported_parameter"
            )
    if params.get("input_fidelity") not in (None, "") and not facts.input_fidelity:
        return ParamRefusal(
            f"Unsupported parameter: 'input_fidelity' is not supported with model '{model}'.",
            "input_fidelity",
            "unsupported_parameter",
        )
    checks = (
        _choice(params.get("quality"), facts.qualities, "quality"),
        _choice(params.get("output_format"), facts.formats, "output_format"),
        _choice(params.get("input_fidelity"), facts.input_fidelity, "input_fidelity"),
    )
    return next((c for c in checks if c is not None), None) or value_refusal(surface, params)


def value_refusal(surface: Surface, params: Mapping[str, Any]) -> ParamRefusal | None:
    """What no model takes: a field the surface lacks, a value outside its set, the gif/svg rules.

    The check for a request whose model the policy has yet to choose; :func:`refusal` adds the model's own."""
    known = catalog()["openai_image_params"]
    checks = (
        _not_on_surface(surface, params),
        _choice(params.get("complexity"), known["complexity"], "complexity"),
        _choice(params.get("moderation"), known["moderation"], "moderation"),
        _choice(params.get("input_fidelity"), ["high", "low"], "input_fidelity"),
    )
    found = next((c for c in checks if c is not None), None)
    return found or format_rules(params.get("output_format") or "png", params, known)


def _not_on_surface(surface: Surface, params: Mapping[str, Any]) -> ParamRefusal | None:
    for name in (*GATED_PARAMS, "moderation", "input_fidelity"):
        if params.get(name) not in (None, "") and name not in surface_params(surface):
            return ParamRefusal(f"Unknown parameter: '{name}'.", name, "unknown_parameter")
    return None


def _as_int(value: Any, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default  # a malformed value is refused by the field's own check, not here


def format_rules(fmt: str, params: Mapping[str, Any], known: Mapping[str, Any] | None = None) -> ParamRefusal | None:
    """What gif and svg output exclude, and the fields only they take (as the SDK's docstrings state)."""
    known = known or catalog()["openai_image_params"]
    for name in _GIF_ONLY:
        if params.get(name) not in (None, "") and fmt != "gif":
            return ParamRefusal(f"Invalid '{name}': only supported with output_format=gif.", name, "invalid_value")
    if params.get("svg") not in (None, "") and fmt != "svg":
        return ParamRefusal("Invalid 'svg': only supported with output_format=svg.", "svg", "invalid_value")
    if params.get("frame_count") not in (None, ""):
        lo, hi = known["frame_count"]
        if err := _int_in(params["frame_count"], lo, hi, "frame_count"):
            return err
    duration = params.get("frame_duration_ms")
    if duration not in (None, "") and (err := _int_in(duration, 1, 655_350, "frame_duration_ms")):
        return err
    streamed = str(params.get("stream", "")).lower() in ("true", "1") or _as_int(params.get("partial_images"), 0) > 0
    if fmt in ("gif", "svg"):
        if streamed:
            return ParamRefusal(f"{fmt.upper()} output does not support streaming or partial images.", "stream",
                                "invalid_value")  # fmt: skip
        if params.get("output_compression") not in (None, ""):
            return ParamRefusal(f"{fmt.upper()} output does not support output_compression.", "output_compression",
                                "invalid_value")  # fmt: skip
    if fmt == "gif" and params.get("mask"):
        return ParamRefusal("GIF output does not support masks.", "mask", "invalid_value")
    if fmt == "svg" and _as_int(params.get("n"), 1) != 1:
        return ParamRefusal("SVG output requires n=1.", "n", "invalid_value")
    if params.get("markup") and params.get("mask"):
        return ParamRefusal("'markup' cannot be combined with 'mask'.", "markup", "invalid_value")
    return None
